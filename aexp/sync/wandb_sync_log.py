"""The reader of W&B's own log of one `wandb sync` process,
`<WANDB_DIR>/wandb/logs/debug-sync.*.log`.

The log is JSON lines. Every line about a run names the `.wandb` file it concerns (`sync_path`),
which is how several runs uploaded by one `wandb sync` process are judged one by one: a run's
upload starts with the line "sender: started", ends with "sender: closed", and any ERROR line
naming it means that something of it did not arrive. Each `wandb sync` process aexp starts gets a
private `WANDB_DIR`, so the log belongs to that process alone (wandb_process.py).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aexp.wandb_offline import WANDB_DIR


@dataclass
class PathState:
    """What W&B's debug-sync log said about one .wandb file."""

    started: float | None = None  # log time (epoch seconds)
    closed: float | None = None
    started_seen: float | None = None  # our monotonic clock when we saw it start
    errors: list[str] = field(default_factory=list)


class SyncLog:
    """Incremental reader of `<wandb_dir>/wandb/logs/debug-sync*.log` (JSON lines).

    `paths` maps each `.wandb` file named in the log to its PathState; `global_errors` holds the
    ERROR lines that name no file (wandb-core logs some that way).
    """

    def __init__(self, wandb_dir: Path) -> None:
        self.logs_dir = wandb_dir / WANDB_DIR / "logs"
        self.paths: dict[str, PathState] = {}
        self.global_errors: list[str] = []
        self.seen_any = False  # a line of the log was read: W&B could write it
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}

    def poll(self) -> list[str]:
        """Read what was appended; returns the sync paths that closed since the last poll."""
        closed: list[str] = []
        try:
            logs = sorted(self.logs_dir.glob("debug-sync*.log"))
        except OSError:
            return closed
        for log in logs:
            try:
                with open(log, "rb") as fh:
                    fh.seek(self._offsets.get(log, 0))
                    data = fh.read()
            except OSError:
                continue
            if not data:
                continue
            self._offsets[log] = self._offsets.get(log, 0) + len(data)
            # A line W&B is still writing is kept until its newline arrives.
            data = self._partial.pop(log, b"") + data
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[log] = rest
            for line in lines:
                closed.extend(self._line(line))
        return closed

    def _line(self, raw: bytes) -> list[str]:
        try:
            entry = json.loads(raw)
        except ValueError:
            return []
        if not isinstance(entry, dict):
            return []
        self.seen_any = True
        level = str(entry.get("level", ""))
        msg = str(entry.get("msg", ""))
        path = entry.get("sync_path")
        if level.startswith("ERROR"):
            text = msg + (f": {entry['error']}" if entry.get("error") else "")
            text = " ".join(text.split())[:400]
            if path:
                self.paths.setdefault(path, PathState()).errors.append(text)
            else:
                self.global_errors.append(text)
        if not path:
            return []
        state = self.paths.setdefault(path, PathState())
        if msg == "sender: started" and state.started is None:
            state.started = _log_time(entry.get("time"))
            state.started_seen = time.monotonic()
        elif msg == "sender: closed":
            state.closed = _log_time(entry.get("time")) or time.time()
            return [path]
        return []


def _log_time(text: Any) -> float | None:
    """Epoch seconds of a log line's ISO-8601 `time` (nanosecond fractions cut to microseconds,
    which is all `datetime` holds); None when it is missing or not a time."""
    if not isinstance(text, str):
        return None
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if not match:
        return None
    fraction = (match.group(2) or ".0")[:7]
    zone = match.group(3) or "Z"
    try:
        return datetime.fromisoformat(
            match.group(1) + fraction + ("+00:00" if zone == "Z" else zone)
        ).timestamp()
    except ValueError:
        return None
