"""Whether a directory lives on a file system that only this kernel serves (Linux mountinfo).

`aexp.joblock.job_lock` flocks a job's directory where this says True: every process that can
reach the directory then asks this kernel for the lock, so the lock excludes them all and a
lock file need not be created per job. A network or cluster file system answers False: Linux
has no NFS flock for directories and grants a lock local to the node, which excludes nothing on
other nodes (see `LOCAL_TYPES`).
"""

from __future__ import annotations

import contextlib
import os
import re

# File system types served by this kernel alone. Deliberately a short list of the common local
# ones: an unknown type (nfs, nfs4, lustre, gpfs, beegfs, cifs, ceph, fuse.*, ...) answers False.
LOCAL_TYPES = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "bcachefs", "overlay"}
)
MOUNTINFO = "/proc/self/mountinfo"

# Answers by directory: asked once per workspace and process.
_known: dict[str, bool] = {}


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040 ...);
    # every other byte is as it is (the line was read as UTF-8 with surrogateescape, so a
    # non-ASCII path must not go through a latin-1 round trip: that raised, and the mount was
    # skipped, its parent's type answering for it).
    if "\\" not in field:
        return field
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def fs_type(path: str) -> str | None:
    """The type of the file system `path` (resolved) is on, from /proc/self/mountinfo: the
    mount whose mount point is the longest prefix of it. None where there is no mountinfo."""
    target = os.path.realpath(path)
    best, best_type = -1, None
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                fields = line.split()
                try:
                    mount_point = _unescape(fields[4])
                    kind = fields[fields.index("-", 6) + 1]
                except (IndexError, ValueError):
                    continue
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= best:  # a later mount hides an earlier one
                    best, best_type = len(mount_point), kind
    except OSError:
        return None
    return best_type


def kernel_local(directory: str) -> bool:
    """True when `directory` is on a file system of a type in LOCAL_TYPES (cached)."""
    known = _known.get(directory)
    if known is None:
        known = _known[directory] = fs_type(directory) in LOCAL_TYPES
    return known


def probe_write(directory: str) -> None:
    """Create, write a block to, sync and remove a small file in `directory`; raises the OSError
    a read-only mount, a full disk or a quota answers (an empty file may pass where a block of
    data does not). Leaves nothing behind."""
    probe = os.path.join(directory, f".aexp-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"aexp\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


__all__ = ["LOCAL_TYPES", "fs_type", "kernel_local", "probe_write"]
