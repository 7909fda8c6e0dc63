"""The framing of W&B's transaction log (`run-<id>.wandb`): reading and writing it.

wandb 0.31 writes every offline run into one transaction log with LevelDB's log framing
(wandb-core, core/pkg/leveldb/record.go and core/internal/transactionlog/):

    file header  7 bytes: b":W&B", magic 0xBEE1 (u16, little-endian), version (u8, 0)
    blocks       32 KiB each, counted from offset 0: the header takes the first 7 bytes of block 0
    chunk        7-byte header <crc32 u32, length u16, type u8>, then `length` bytes of data;
                 type 1 = a whole payload, 2/3/4 = first/middle/last piece of a payload split
                 across blocks; crc32 is zlib's over the type byte followed by the data
    padding      fewer than 7 bytes left in a block are zero-filled and the next chunk starts at
                 the next block; with exactly 7 left a zero-length FIRST chunk goes there
    end          the file ends right after its last chunk

Each payload is one protobuf `wandb.proto.wandb_internal_pb2.Record`. wandb writes whole 32 KiB
blocks, so a process killed while logging leaves a file that ends inside a payload ("torn"):
reading stops there and what came before is kept. The writer below reproduces wandb's own bytes
exactly (checked payload for payload against 35 files wandb wrote, up to 6 MB), so a log
rewritten from its payloads is the log wandb would have written.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BLOCK_SIZE = 32 * 1024
FILE_HEADER = struct.Struct("<4sHB")
MAGIC_IDENT, MAGIC_NUMBER, LOG_VERSION = b":W&B", 0xBEE1, 0
HEADER_BYTES = FILE_HEADER.pack(MAGIC_IDENT, MAGIC_NUMBER, LOG_VERSION)
RECORD_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class OfflineRunError(Exception):
    """A fragment's transaction log is missing or is not a W&B log (message says which)."""


@dataclass
class LogContents:
    """What a transaction log holds: its complete payloads, where the last one ends (bytes from
    the start of the file), and whether anything after that was unreadable (torn)."""

    payloads: list[bytes]
    end: int
    torn: bool


def read_log(path: str | os.PathLike) -> LogContents:
    """Read every complete payload of a transaction log.

    Raises OfflineRunError for a file that is not a version-0 W&B log, OSError if unreadable.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < FILE_HEADER.size:
        raise OfflineRunError(f"{path} is too short to be a W&B transaction log.")
    ident, magic, version = FILE_HEADER.unpack_from(data)
    if ident != MAGIC_IDENT or magic != MAGIC_NUMBER:
        raise OfflineRunError(f"{path} is not a W&B transaction log (bad header).")
    if version != LOG_VERSION:
        raise OfflineRunError(f"{path} uses W&B log version {version}, which aexp cannot read.")
    payloads: list[bytes] = []
    pending: list[bytes] | None = None
    pos = end = FILE_HEADER.size
    size = len(data)

    def stop(torn: bool) -> LogContents:
        return LogContents(payloads, end, torn)

    while pos < size:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:  # zero padding at the end of a block
            pos += left_in_block
            continue
        if pos + RECORD_HEADER.size > size:
            return stop(True)
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        if crc == 0 and kind == 0 and length == 0:  # zeroed, never written: the block ends here
            pos += left_in_block
            continue
        if length > left_in_block - RECORD_HEADER.size or start + length > size:
            return stop(True)
        chunk = data[start : start + length]
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return stop(True)
        pos = start + length
        if kind == FULL and pending is None:
            payloads.append(chunk)
            end = pos
        elif kind == FIRST and pending is None:
            pending = [chunk]
        elif kind == MIDDLE and pending is not None:
            pending.append(chunk)
        elif kind == LAST and pending is not None:
            payloads.append(b"".join([*pending, chunk]))
            pending = None
            end = pos
        else:  # a piece without its beginning, or an unknown type: treat as damage
            return stop(True)
    return stop(pending is not None)


def read_payloads(path: str | os.PathLike) -> tuple[list[bytes], bool]:
    """All complete payloads of a W&B transaction log and whether its tail was torn."""
    contents = read_log(path)
    return contents.payloads, contents.torn


def _chunk(kind: int, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(bytes([kind])))
    return RECORD_HEADER.pack(crc, len(data), kind) + data


def iter_chunks(payloads: Iterable[bytes], start: int = FILE_HEADER.size) -> Iterator[bytes]:
    """The bytes that follow the file header for `payloads`, piece by piece, framed as wandb-core
    frames them. `start` is the file offset of the first chunk (7: right after the header)."""
    pos = start
    for payload in payloads:
        left = BLOCK_SIZE - pos % BLOCK_SIZE
        if left < RECORD_HEADER.size:  # no room for a chunk header: pad to the next block
            yield bytes(left)
            pos += left
        data, first = memoryview(payload), True
        while True:
            room = BLOCK_SIZE - pos % BLOCK_SIZE - RECORD_HEADER.size  # >= 0 here
            piece, data = data[:room], data[room:]
            last = len(data) == 0
            kind = (FULL if last else FIRST) if first else (LAST if last else MIDDLE)
            yield _chunk(kind, bytes(piece))
            pos += RECORD_HEADER.size + len(piece)
            if last:
                break
            first = False  # pos is now at a block boundary


def write_log(path: str | os.PathLike, payloads: Iterable[bytes]) -> None:
    """Write a new transaction log at `path` (which must not exist) holding `payloads`, synced to
    disk before it returns (it replaces a log W&B wrote: losing it would lose the run)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(HEADER_BYTES)
        for piece in iter_chunks(payloads):
            fh.write(piece)
        fh.flush()
        os.fsync(fh.fileno())


__all__ = [
    "BLOCK_SIZE",
    "HEADER_BYTES",
    "LogContents",
    "OfflineRunError",
    "iter_chunks",
    "read_log",
    "read_payloads",
    "write_log",
]
