"""Baseline of benchmark 9: the runs table a researcher writes by hand with `json`.

    python baseline_results.py loss:min accuracy:max

What `aexp runs --metrics loss:min,accuracy:max` prints, read the obvious way: list the
workspace, `json.load` each job's state point and document, and for each bound job read its
run's journal line by line, keeping the minimum (maximum) of each metric over the `log` events;
then sort by group and job id, and print the table with the columns padded (the state-point keys
that vary, the run's group, backend, id, state and synced flag, the metrics, the URL). Benchmark 9
checks that the two outputs are the same text, so both do the same work. Nothing of aexp or signac
is imported. Written to hold little: a row keeps its values (the state point's as a tuple), and
the lines are formatted twice (widths, then text) rather than kept.
"""

import json
import math
import os
import sys


def reduce(values, how):
    numbers = [v for v in values if type(v) in (int, float) and v == v]
    if how == "count":
        return len(values)
    if how in ("first", "last"):
        return (values[0] if how == "first" else values[-1]) if values else None
    if not numbers:
        return math.nan if values else None
    if how == "min":
        return min(numbers)
    if how == "max":
        return max(numbers)
    return sum(numbers) / len(numbers)


def cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return json.dumps(float(f"{value:.6g}")) if math.isfinite(value) else json.dumps(value)
    return value if isinstance(value, str) else json.dumps(value)


def main(specs):
    specs = [s.split(":") for s in specs]
    rows, first, varying, keys = [], {}, set(), {}
    workspace = "workspace"
    for job_id in sorted(os.listdir(workspace)):
        path = os.path.join(workspace, job_id)
        try:
            with open(os.path.join(path, "signac_statepoint.json")) as fh:
                sp = json.load(fh)
            with open(os.path.join(path, "signac_job_document.json")) as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            continue
        for key, value in sp.items():
            keys.setdefault(key, len(keys))
            if first.setdefault(key, value) != value:
                varying.add(key)
        values = [None] * len(keys)
        for key, value in sp.items():
            values[keys[key]] = value
        tracker = doc.get("tracker")
        metrics = [None] * len(specs)
        if tracker is None:
            group = f"{sp['hypothesis_id']}/{sp['experiment_id']}/{sp.get('condition', 'default')}"
            run = (group, None, None, "unbound", None, None)
        elif not isinstance(tracker, dict):
            print(f"aexp: warning: job {job_id}: corrupt", file=sys.stderr)
            run = (None, None, None, "corrupt", None, None)
        else:
            offline = tracker.get("offline")
            synced = bool(tracker.get("synced_at")) if offline else None
            backend = tracker["backend"] + ("-offline" if offline else "")
            run = (tracker["group"], backend, tracker["run_id"], tracker["state"], synced)
            run += (tracker.get("url"),)
            found = {key: [] for key, _ in specs}
            journal = os.path.join(path, "tracker_log", tracker["run_id"], "events.jsonl")
            try:
                with open(journal) as fh:
                    for line in fh:
                        event = json.loads(line)
                        if event.get("event") == "log" and not event.get("redo"):
                            for key, seen in found.items():
                                if key in event["metrics"]:
                                    seen.append(event["metrics"][key])
            except FileNotFoundError:
                pass
            metrics = [reduce(found[key], how) for key, how in specs]
        rows.append((job_id, tuple(values), run, tuple(metrics)))
    rows.sort(key=lambda r: (r[2][0] or "", r[0]))
    params = [keys[key] for key in first if key in varying]
    header = ["JOB", *(k for k in first if k in varying), "GROUP", "BACKEND", "RUN", "STATE"]
    header += ["SYNCED", *(":".join(s) for s in specs), "URL"]

    def cells():
        for job_id, values, (group, backend, run, state, synced, url), metrics in rows:
            shown = None if synced is None else ("yes" if synced else "no")
            sp = [values[i] if i < len(values) else None for i in params]
            yield [cell(v) for v in [job_id, *sp, group, backend, run, state, shown, *metrics, url]]

    widths = [len(h) for h in header]
    for row in cells():
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    out = sys.stdout
    out.write("  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip() + "\n")
    for row in cells():
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
