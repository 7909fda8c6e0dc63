"""Per-run metric aggregates read from the journals, with a cache that makes a second look cheap.

Reductions (`loss:min`, ...) need every row of a run's journal; parsing them costs ~0.3-1 ms for
a 20-row journal and ~10-20 ms for 1,000 rows (10,000 runs of 20 rows: seconds), against ~5 us
for a stat (docs/results.md, "What it costs"). So the aggregates of every metric of every run
read (aexp.results.reduce.Aggregate: count, first, last, min, max, sum) are kept in one file
per project, `<project>/.aexp/cache/journal-stats.json`, keyed by the journal's inode, size and
modification time. A journal that did not change is not read again; one that grew (a running
attempt appends) is read from where the cache stopped, since journals are append-only; one that
was replaced or shrank is read again in full.

The cache is private to aexp and disposable: delete it any time. Writing it is best effort (a
read-only project works without it); concurrent writers replace it atomically, the last one
wins, and no entry is ever trusted without its journal's stat matching.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from aexp.journal import decode_metrics
from aexp.results.reduce import Aggregate

CACHE_DIR = os.path.join(".aexp", "cache")
CACHE_FILE = "journal-stats.json"
_VERSION = 1


def _read_from(path: str, offset: int, aggregates: dict[str, Aggregate]) -> int:
    """Add the history rows of `path` from byte `offset` to `aggregates`; returns the offset
    after the last complete line (a torn last line is left for the next read)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if b'"log"' not in line:  # cheap pre-filter: every log event has "event": "log"
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event") != "log" or event.get("redo"):
            continue
        for key, value in decode_metrics(event).items():
            agg = aggregates.get(key)
            if agg is None:
                agg = aggregates[key] = Aggregate()
            agg.add(value)
    return offset + end


class JournalStats:
    """Aggregates of runs' journals, cached per project (see the module docstring).

    `root` is the project directory (None: no cache, every journal is read). Call `save()` after
    a pass to store what was read.
    """

    def __init__(self, root: str | os.PathLike | None) -> None:
        self.path = os.path.join(root, CACHE_DIR, CACHE_FILE) if root is not None else None
        self._entries: dict[str, list[Any]] = {}
        self._changed = False
        self.reads = 0  # journals (or their tails) read in this pass
        if self.path is not None:
            with contextlib.suppress(OSError, ValueError):
                with open(self.path, encoding="utf-8") as fh:
                    data = json.load(fh)
                if isinstance(data, dict) and data.get("version") == _VERSION:
                    self._entries = data.get("runs") or {}

    def aggregates(self, job_id: str, journal: str | os.PathLike) -> dict[str, Aggregate]:
        """{metric: Aggregate} of the run whose journal is at `journal` ({} when it has none)."""
        path = os.fspath(journal)
        try:
            st = os.stat(path)
        except OSError:
            return {}
        key = f"{job_id}/{os.path.basename(os.path.dirname(path))}"
        entry = self._entries.get(key)
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
        if entry is not None and entry[:3] == stamp:
            return {k: Aggregate.from_json(v) for k, v in entry[4].items()}
        offset, aggregates = 0, {}
        if entry is not None and entry[0] == st.st_ino and entry[3] <= st.st_size:
            offset = entry[3]  # the journal grew: read only what was appended
            aggregates = {k: Aggregate.from_json(v) for k, v in entry[4].items()}
        try:
            offset = _read_from(path, offset, aggregates)
        except OSError:
            return {}
        self.reads += 1
        self._entries[key] = [*stamp, offset, {k: a.as_json() for k, a in aggregates.items()}]
        self._changed = True
        return aggregates

    def save(self, job_ids: set[str] | None = None) -> None:
        """Store the cache (best effort). `job_ids`: the project's jobs, to forget removed ones."""
        if job_ids is not None:
            kept = {k: v for k, v in self._entries.items() if k.split("/", 1)[0] in job_ids}
            self._changed |= len(kept) != len(self._entries)
            self._entries = kept
        if self.path is None or not self._changed:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"version": _VERSION, "runs": self._entries}, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
            self._changed = False
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


__all__ = ["CACHE_DIR", "CACHE_FILE", "JournalStats"]
