"""Settling W&B uploads whose outcome is in doubt, from the server's own account.

Before a fragment's upload starts, the sync records it in flight in the job document
(`tracker.backends.wandb.inflight.fragments`, record.py). An upload that ends cleanly (W&B wrote
its marker and logged no error for it) is recorded synced and leaves the in-flight record; every
other ending leaves the record where it is: an error W&B logged after its marker (wandb 0.31 logs
`runfiles: called UploadNow() after Finish()` for a fragment whose `environment` record follows
its `exit` record, after uploading all of it), a timeout, Ctrl-C or SIGTERM, a full disk, a crash,
a `kill -9`. Such an upload is settled here before anything of its run is sent again, from what
the server holds of the run (wandb_account.py: its last history step, the artifacts it logged,
whether its last upload reached its end):

- the server holds none of the fragment's rows and none of its artifacts: it is sent again as it
  is (its in-flight record is dropped, a marker W&B may have written is removed);
- the server holds all of them: the fragment is recorded synced, never sent again;
- the server holds part of them (an upload cut short): the fragment is recorded synced as far as
  the server holds it (`last` = the server's last step, `rows` counted, the artifacts that
  arrived); the rows after it and the artifacts that did not arrive are written from the journal
  into a repair fragment that follows it (wandb_prepare.py) and uploaded by this or the next sync.
  A fragment whose rows all arrived but whose end did not (`ended: false`; W&B then shows the run
  running, later crashed) gets a repair fragment with the run's summary and exit code when it is
  the run's last.

W&B resumes a run after the last step it holds and renumbers any row behind it (docs/sync.md,
"Fragments and steps"), which is why the last step says how far an upload got: the rows of a
fragment arrive in step order. Artifacts are counted per name: an artifact of the fragment arrived
when the server holds more versions of that name than the fragments recorded before it logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aexp.binding import backend_parts
from aexp.jobdoc import JobDir
from aexp.sync.wandb_account import Account, RunAddress
from aexp.wandb_offline.folders import SYNCED_SUFFIX, WANDB_DIR

WANDB = "wandb"
SENT, NONE, PARTIAL = "sent", "none", "partial"


@dataclass
class Verdict:
    """What the server holds of one fragment whose upload was in doubt."""

    folder: str  # the fragment's folder name
    kind: str  # SENT, NONE or PARTIAL
    record: dict[str, Any] | None  # what the document records of it as synced (None: nothing)
    missing: tuple[str, ...] = ()  # what of it the server lacks (PARTIAL)

    def sentence(self) -> str:
        """One line for the user."""
        if self.kind == SENT:
            return "the server holds all of it: recorded synced, not sent again"
        if self.kind == NONE:
            return "the server holds none of it: sent again"
        rec = self.record or {}
        held = f"steps {rec['first']}..{rec['last']}" if rec.get("rows") else "none of its rows"
        return f"the server holds part of it ({held}); sent from the journal after it: " + (
            ", ".join(self.missing)
        )


def inflight_fragments(binding: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The W&B fragments a sync recorded in flight and did not settle: {folder name: entry}."""
    inflight = (backend_parts(binding).get(WANDB) or {}).get("inflight") or {}
    return dict(inflight.get("fragments") or {})


def address(binding: Mapping[str, Any], key: str) -> RunAddress:
    """Where the run of `binding` lives on the W&B server: its entity (the binding's options,
    else the entity in the URL W&B printed when it was uploaded, else the viewer's default)."""
    part = backend_parts(binding).get(WANDB) or {}
    entity = (part.get("options") or {}).get("entity") or (part.get("extra") or {}).get("entity")
    if not entity:
        url = part.get("url") or (binding.get("url") if binding.get("backend") == WANDB else None)
        if url:  # <app>/<entity>/<project>/runs/<run id>
            bits = urlsplit(str(url)).path.strip("/").split("/")
            if len(bits) >= 4 and bits[-2] == "runs":
                entity = bits[-4]
    return RunAddress(key, entity or None, str(binding.get("project") or ""), binding["run_id"])


def decide(
    account: Account,
    inflight: Mapping[str, Mapping[str, Any]],
    recorded: Mapping[str, Mapping[str, Any]],
    folders: Mapping[str, Path],
) -> list[Verdict]:
    """The verdict on each in-flight fragment (module docstring), in start-time order.

    `recorded`: the fragments the document records synced; `folders`: each in-flight fragment's
    folder (to count its rows when an upload stopped inside a fragment whose steps have gaps).
    """
    before: dict[str, int] = {}
    for entry in recorded.values():
        for name in entry.get("artifacts") or ():
            before[name] = before.get(name, 0) + 1
    ordered = sorted(inflight.items(), key=lambda item: (item[1].get("start") or 0, item[0]))
    verdicts = []
    for index, (name, entry) in enumerate(ordered):
        arrived = []
        for artifact in entry.get("artifacts") or ():
            expected = before.get(artifact, 0)
            if account.exists and account.artifacts.get(artifact, 0) > expected:
                arrived.append(artifact)
                before[artifact] = expected + 1
        first, last, rows = entry.get("first"), entry.get("last"), int(entry.get("rows") or 0)
        if not account.exists or (first is not None and account.last_step < first):
            held_rows, held_last = 0, None
        elif first is None or account.last_step >= last:
            held_rows, held_last = rows, last
        else:
            held_last = account.last_step
            held_rows = _rows_up_to(entry, held_last, folders.get(name))
        if held_rows == 0 and not arrived:  # nothing that could arrive twice arrived
            verdicts.append(Verdict(name, NONE, None))
            continue
        record = {
            "first": first if held_rows else None,
            "last": held_last if held_rows else None,
            "rows": held_rows,
            "start": entry.get("start") or 0.0,
            "artifacts": sorted(arrived),
        }
        lacking = [a for a in entry.get("artifacts") or () if a not in arrived]
        missing = []
        if held_rows < rows:
            missing.append(f"the rows after step {held_last}" if held_rows else "its rows")
        missing += [f"artifact {a}" for a in lacking]
        last_one = index == len(ordered) - 1
        if last_one and not account.ended:
            record["ended"] = False  # the run's end (exit code, summary) did not arrive
            missing.append("the run's end")
        sent = not missing
        verdicts.append(Verdict(name, SENT if sent else PARTIAL, record, tuple(missing)))
    return verdicts


def _rows_up_to(entry: Mapping[str, Any], step: int, folder: Path | None) -> int:
    """How many rows of a fragment have steps up to `step`: counted from first..last when its
    steps are contiguous, else from the fragment itself."""
    first, last, rows = int(entry["first"]), int(entry["last"]), int(entry["rows"])
    if rows == last - first + 1:
        return step - first + 1
    if folder is not None:
        from aexp.wandb_offline.decode import read_fragment

        try:
            return sum(1 for s in read_fragment(folder).steps if s <= step)
        except Exception:  # unreadable now: count as contiguous, the journal repairs the rest
            pass
    return max(0, min(rows, step - first + 1))


def settle_entries(
    verdicts: Iterable[Verdict],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(fragments to record synced {folder: record}, folders to send again) from verdicts."""
    record: dict[str, dict[str, Any]] = {}
    again: list[str] = []
    for verdict in verdicts:
        if verdict.record is None:
            again.append(verdict.folder)
        else:
            record[verdict.folder] = verdict.record
    return record, again


# Seconds the server's account may take at most, however long an upload may (a server that
# hangs costs this, not another upload timeout).
ACCOUNT_TIMEOUT = 60.0


def settle_runs(
    items: Sequence[tuple[JobDir, str, Mapping[str, Any]]], *, timeout: float
) -> dict[str, list[Verdict] | str]:
    """Settle the in-flight W&B fragments of each (job, run id, binding) from the server's
    account, asked once for all of them, and record the verdicts in the job documents (the job's
    claim must be held). Returns {job id: its verdicts}, or the sentence saying why the server
    could not be asked (then nothing of that run may be sent: its record stays in flight)."""
    from aexp.sync.wandb_account import AccountError, ask
    from aexp.sync.wandb_prepare import known_fragments

    addresses = [address(binding, job.id) for job, _, binding in items]
    try:
        accounts = ask(addresses, timeout=min(timeout, ACCOUNT_TIMEOUT))
    except AccountError as exc:
        return {job.id: str(exc) for job, _, _ in items}
    out: dict[str, list[Verdict] | str] = {}
    for job, run_id, binding in items:
        account = accounts.get(job.id)
        if not isinstance(account, Account):
            out[job.id] = f"W&B could not say what it holds of run {run_id} ({account})"
            continue
        try:
            inflight = inflight_fragments(binding)
            recorded = {
                k: v for k, v in known_fragments(dict(binding)).items() if k not in inflight
            }
            folders = {name: Path(job.path, WANDB_DIR, name) for name in inflight}
            verdicts = decide(account, inflight, recorded, folders)
            written = apply_verdicts(job, run_id, verdicts, folders, url=account.url)
        except Exception as exc:  # this job's trouble stays with it: its uploads stay in doubt
            out[job.id] = f"its verdict could not be recorded ({type(exc).__name__}: {exc})"
            continue
        out[job.id] = (
            verdicts
            if written
            else f"the job document could not record what W&B holds of run {run_id}"
        )
    return out


def apply_verdicts(
    job: JobDir,
    run_id: str,
    verdicts: Sequence[Verdict],
    folders: Mapping[str, Path],
    *,
    url: str | None = None,
) -> bool:
    """Record the verdicts: fragments the server holds (wholly or in part) as synced, the others
    out of flight with any marker W&B wrote for them removed (they are sent again); and the
    run's page `url` where the server holds some of it (no `wandb sync` printed it: the upload
    that sent it was cut short). Returns whether the job document took it."""
    from aexp.sync.record import record_fragments

    records, again = settle_entries(verdicts)
    for name in again:
        folder = folders.get(name)
        for marker in folder.glob(f"run-*.wandb{SYNCED_SUFFIX}") if folder else ():
            with contextlib.suppress(OSError):
                marker.unlink()
    held = url if records else None
    return record_fragments(job, run_id, records, settled=again, url=held) is not None


__all__ = [
    "NONE",
    "PARTIAL",
    "SENT",
    "Verdict",
    "address",
    "apply_verdicts",
    "decide",
    "inflight_fragments",
    "settle_entries",
    "settle_runs",
]
