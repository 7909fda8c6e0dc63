"""Reductions of runs' journals: only the metrics asked for, and a cache for long journals.

    stats = JournalStats(project_root)
    stats.reduce(job_id, journal_path, [MetricSpec("loss", "min", journal=True)])  -> [0.21]

A journal is read once per call, whatever the number of specs, and only the asked metric keys
are reduced (aexp.results.reduce.Aggregate). The `log` lines are parsed in one `json.loads` of
the lines joined into an array (a damaged line sends that journal to a line-by-line parse that
skips it): a 20-row journal takes ~50 us, about what `open` and `read` cost.

Long journals (MIN_CACHED_BYTES and more: ~400 rows and up) keep the aggregates of the keys asked
so far in one small file each, `<project>/.aexp/cache/journal-stats/<job id>/<run id>.json`, with
the journal's inode, size, modification time and the offset read up to. A journal that did not
change is not read again; one that grew (a running attempt appends; journals are append-only)
is read from that offset; one that was replaced or shrank is read again in full. Shorter
journals are cheaper to read than any cache, so nothing is written for them: a first pass over a
sweep writes nothing unless its runs are long, and memory stays one run's at a time.

The cache is private to aexp and disposable: delete it any time. Writing it is best effort (a
read-only project works without it); concurrent writers replace a file atomically, the last one
wins, and no entry is trusted without its journal's stat matching.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Sequence
from typing import Any

from aexp.journal import decode_metrics
from aexp.results.reduce import Aggregate, MetricSpec, aggregates_of, reduce_metric

CACHE_DIR = os.path.join(".aexp", "cache", "journal-stats")
LEGACY_CACHE = os.path.join(".aexp", "cache", "journal-stats.json")  # one file for every run
MIN_CACHED_BYTES = 64 * 1024
_VERSION = 2


def read_rows(path: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """(the metrics of every history row of the journal at `path` from byte `offset`, the
    offset after the last complete line). A torn last line is left for the next read; re-dos
    are left out; non-finite values are restored (aexp.journal.decode_metrics).

    Raises OSError when the journal cannot be read.
    """
    with open(path, "rb") as fh:
        if offset:
            fh.seek(offset)
        data = fh.read()
    return parse_rows(data, offset)


def parse_rows(data: bytes, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """`read_rows` of a journal's bytes read from `offset`."""
    end = data.rfind(b"\n") + 1
    try:  # every complete line at once, as one array: one parse instead of one per line
        events = json.loads(b"[" + data[: end - 1].replace(b"\n", b",") + b"]") if end else []
    except ValueError:  # a damaged or empty line (a hand edit, a disk error): skip it alone
        events = []
        for line in data[:end].split(b"\n"):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    rows = []
    for event in events:
        if type(event) is not dict or event.get("event") != "log" or event.get("redo"):
            continue
        metrics = event.get("metrics")
        if type(metrics) is dict:
            rows.append(decode_metrics(event) if event.get("nonfinite") else metrics)
    return rows, offset + end


class JournalStats:
    """Reductions of runs' journals (see the module docstring).

    `root` is the project directory (None: no cache, every journal is read). `min_bytes`: the
    size from which a journal's aggregates are cached. `reads` counts the journals (or their
    tails) read.
    """

    def __init__(
        self, root: str | os.PathLike | None, *, min_bytes: int = MIN_CACHED_BYTES
    ) -> None:
        self.directory = os.path.join(root, CACHE_DIR) if root is not None else None
        self.min_bytes = min_bytes
        self.reads = 0
        if root is not None:  # the single-file cache of earlier versions: its size grew per run
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, LEGACY_CACHE))

    def values(self, record: Any, specs: Sequence[MetricSpec]) -> dict[str, Any]:
        """{spec name: the run's value} of a JobRecord: a bare key's last value from the
        binding's summary, a reduction from the journal (read once for all of them); None
        where the run has none."""
        reduced: dict[str, Any] = {}
        journal_specs = [spec for spec in specs if spec.journal]
        if journal_specs and record.run_id is not None:
            found = self.reduce(record.job_id, record.journal, journal_specs)
            reduced = dict(zip((spec.name for spec in journal_specs), found, strict=True))
        if len(journal_specs) == len(specs):
            return reduced if reduced else dict.fromkeys(spec.name for spec in specs)
        summary = record.summary
        return {s.name: reduced.get(s.name) if s.journal else summary.get(s.key) for s in specs}

    def reduce(self, job_id: str, journal: str, specs: Sequence[MetricSpec]) -> list[Any]:
        """The value of each spec for the run whose journal is at `journal` (None for a key the
        run never logged, and for every spec when it has no journal)."""
        aggregates = self.aggregates(job_id, journal, {spec.key for spec in specs})
        return [reduce_metric(aggregates, spec) for spec in specs]

    def aggregates(
        self, job_id: str, journal: str | os.PathLike, keys: Collection[str]
    ) -> dict[str, Aggregate]:
        """{key: Aggregate} of the `keys` the run logged ({} when it has no journal)."""
        path = os.fspath(journal)
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                if self.directory is not None and st.st_size >= self.min_bytes:
                    data = None
                else:
                    data = fh.read()
        except OSError:
            return {}
        if data is None:
            return self._cached(job_id, path, st, keys)
        self.reads += 1
        return aggregates_of(parse_rows(data)[0], keys)

    def _cached(
        self, job_id: str, path: str, st: os.stat_result, keys: Collection[str]
    ) -> dict[str, Aggregate]:
        assert self.directory is not None
        run_id = os.path.basename(os.path.dirname(path))
        entry_path = os.path.join(self.directory, job_id, f"{run_id}.json")
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
        entry = _load(entry_path)
        covered: set[str] = set()
        known: dict[str, Aggregate] = {}
        if entry is not None:
            try:
                covered = set(entry["keys"])
                known = {k: Aggregate.from_json(v) for k, v in entry["aggregates"].items()}
            except (KeyError, TypeError, AttributeError):  # a damaged entry: read it all again
                entry, covered, known = None, set(), {}
        if entry and entry["stamp"] == stamp and covered.issuperset(keys):
            return {k: a for k, a in known.items() if k in keys}
        offset = 0
        if (
            entry
            and covered.issuperset(keys)
            and entry["stamp"][0] == st.st_ino
            and entry["offset"] <= st.st_size
        ):
            offset = entry["offset"]  # the journal grew: read only what was appended
        else:
            covered |= set(keys)
            known = {}
        try:
            rows, end = read_rows(path, offset)
        except OSError:
            return {}
        self.reads += 1
        for key, later in aggregates_of(rows, covered).items():
            known[key] = known[key].merge(later) if key in known else later
        _store(
            entry_path,
            {
                "version": _VERSION,
                "stamp": stamp,
                "offset": end,
                "keys": sorted(covered),
                "aggregates": {k: a.as_json() for k, a in known.items()},
            },
        )
        return {k: a for k, a in known.items() if k in keys}


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            entry = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("version") != _VERSION:
        return None
    stamp, offset = entry.get("stamp"), entry.get("offset")
    if not (isinstance(stamp, list) and len(stamp) == 3 and isinstance(offset, int)):
        return None
    return entry


def _store(path: str, entry: dict[str, Any]) -> None:
    """Write one cache file atomically; best effort (a read-only project has no cache)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(entry, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


__all__ = ["CACHE_DIR", "MIN_CACHED_BYTES", "JournalStats", "parse_rows", "read_rows"]
