"""The experiment's resumable state: `tracker.checkpoint(state)` / `tracker.load_checkpoint()`.

A checkpoint is written in place into one of two slot files in the job's workspace, alternately
(`checkpoint.0.json`, `checkpoint.1.json`); the newest intact slot is the checkpoint. Each slot
is one JSON object:

    {"seq": 7, "step": 19, "crc32": 2864434397, "state": {...}}

`seq` counts checkpoints (slot = seq % 2), `step` is the tracker step at the time, and `crc32` is
the CRC-32 of the `state` text exactly as stored. A write killed half-way, or a slot torn by a
node losing power before the kernel wrote it out, fails the parse or the CRC and the other slot
(the previous checkpoint) is used.

Why not the usual temporary file + rename: a rename creates an inode and journals a directory
change per checkpoint (~0.2 ms here, far more on Lustre or NFS, where it is a metadata-server
round trip), and ext4 starts write-back on every replace-by-rename or truncate-to-zero. A slot
overwritten in place with `pwrite` + `ftruncate` is two system calls on the page cache (~8 µs).
Experiments that checkpoint every few milliseconds notice (docs/benchmarks.md, benchmark 7).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SLOTS = ("checkpoint.0.json", "checkpoint.1.json")
_STATE_KEY = b', "state": '


@dataclass(frozen=True)
class Checkpoint:
    """One stored checkpoint: its sequence number, the tracker step, and the experiment's state."""

    seq: int
    step: int
    state: Any


class CheckpointDamaged(Exception):
    """Slot files exist but none holds an intact checkpoint."""


def write_checkpoint(job_path: str | os.PathLike, seq: int, step: int, state: Mapping) -> None:
    """Store `state` (JSON-serialisable) as checkpoint number `seq` (into slot `seq % 2`).

    The other slot, holding checkpoint `seq - 1`, is not touched. Raises TypeError or ValueError
    (nothing written) if `state` cannot be serialised.
    """
    body = json.dumps(state).encode("ascii")  # ensure_ascii: the text is ASCII
    header = f'{{"seq": {int(seq)}, "step": {int(step)}, "crc32": {zlib.crc32(body)}'
    data = memoryview(header.encode("ascii") + _STATE_KEY + body + b"}")
    path = os.path.join(job_path, SLOTS[seq % 2])
    flags = os.O_WRONLY | os.O_CREAT
    new = seq < len(SLOTS)  # a job's first checkpoints: their slots are usually not there yet
    try:
        fd = os.open(path, flags | os.O_EXCL if new else flags, 0o644)
    except FileExistsError:  # O_EXCL only
        fd, new = os.open(path, flags, 0o644), False
    try:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        if not new:
            # Cut what is left of a longer older checkpoint. Until then the file ends in stale
            # bytes, which fails the parse: a write interrupted here reads as a torn slot. (A
            # slot this call created has nothing older in it.)
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def read_checkpoint(job_path: str | os.PathLike) -> Checkpoint | None:
    """The newest intact checkpoint in the job's workspace, or None if there is none.

    Raises CheckpointDamaged if slot files exist but none is intact.
    """
    found: list[Checkpoint] = []
    damaged = False
    for index, name in enumerate(SLOTS):
        try:
            with open(os.path.join(job_path, name), "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            continue
        checkpoint = _parse(data)
        if checkpoint is None or checkpoint.seq % 2 != index:
            damaged = True
        else:
            found.append(checkpoint)
    if found:
        return max(found, key=lambda checkpoint: checkpoint.seq)
    if damaged:
        raise CheckpointDamaged(f"no intact checkpoint among {', '.join(SLOTS)}")
    return None


def _parse(data: bytes) -> Checkpoint | None:
    try:
        doc = json.loads(data)
        # The header holds integers only, so the first ', "state": ' is the header's own.
        body = data[data.index(_STATE_KEY) + len(_STATE_KEY) : -1]
        seq, step, crc = doc["seq"], doc["step"], doc["crc32"]
    except (ValueError, KeyError, TypeError):  # JSONDecodeError and UnicodeDecodeError too
        return None
    if not all(type(value) is int for value in (seq, step, crc)) or zlib.crc32(body) != crc:
        return None
    return Checkpoint(seq=seq, step=step, state=doc["state"])


__all__ = ["SLOTS", "Checkpoint", "CheckpointDamaged", "read_checkpoint", "write_checkpoint"]
