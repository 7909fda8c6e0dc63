"""What an execution attempt used: its wall time and the peak memory of its process tree.

    usage = Usage.start()      # when the attempt begins
    ...
    usage.finish()             # {"wall_s": 12.345, "peak_rss_mb": 812.4}

Each attempt's `finish` event in the run's journal carries these (docs/job-document.md), and
`aexp resources` sizes walltime and memory from them (aexp/slurm/sizing.py).

Peak memory is the kernel's own high-water marks, read with getrusage(2) and /proc, not sampled:
a sampler (psutil polling RSS every few seconds) misses a peak between two samples, which is
exactly the allocation that gets a job killed; and it would cost a thread per attempt. The
parts:

    self       the attempt's process: on Linux its VmHWM, reset to the current RSS when the
               attempt starts (writing 5 to /proc/self/clear_refs), so an attempt in a process
               that ran others before (`python project.py run` over a sweep) reports its own
               peak; where that reset is refused, RUSAGE_SELF's ru_maxrss, the process's peak
               since it started (an upper bound)
    ended      the largest peak among the child processes that ended and were waited for
               (RUSAGE_CHILDREN's ru_maxrss: a subprocess, a worker pool shut down); counted
               when it rose during the attempt (the kernel keeps one mark per process lifetime)
    running    the peaks (VmHWM in /proc/<pid>/status) of the descendants still running when
               the attempt ends (data loader workers, W&B's service process), found through
               /proc/<pid>/task/*/children (psutil where the kernel lacks those files)

`peak_rss_mb` is their sum: the exact peak of a single process, and for a tree an upper bound
(the peaks of different processes need not coincide), which is the safe side for asking SLURM
for memory. SLURM's own accounting, where a site runs it, samples the job's whole cgroup instead.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import Any

from aexp.joblock import current_pid

# ru_maxrss is in kilobytes on Linux (bytes on macOS).
_RSS_UNIT = 1 if os.uname().sysname == "Darwin" else 1024
_MB = 1 << 20
_CLEAR_REFS = "/proc/self/clear_refs"
_reset_refused = False  # the kernel refused the reset once: not tried again in this process


def _reset_peak() -> bool:
    """Reset this process's peak RSS mark to its current RSS (Linux 4.0+); True if done."""
    global _reset_refused
    if _reset_refused:
        return False
    try:
        fd = os.open(_CLEAR_REFS, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"5")
        finally:
            os.close(fd)
    except OSError:
        _reset_refused = True
        return False
    return True


def _vm_hwm(pid: int) -> int:
    """The peak RSS (bytes) of a running process, from /proc/<pid>/status; 0 if unknown."""
    try:
        data = _read_proc(f"/proc/{pid}/status")
        at = data.index(b"VmHWM:")
        return int(data[at + 6 : data.index(b"\n", at)].split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def _children_of(pid: int) -> list[int] | None:
    """The direct children of a running process, from /proc/<pid>/task/*/children (Linux 3.5+;
    ~20 us for a process with a few threads); None where the kernel has no such files."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    children: list[int] = []
    for tid in tasks:
        try:
            data = _read_proc(f"/proc/{pid}/task/{tid}/children")
            children.extend(int(word) for word in data.split())
        except FileNotFoundError:
            return None if tid == tasks[0] and not children else children
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return children


def _read_proc(path: str) -> bytes:
    """The bytes of a /proc file, read through a plain descriptor: open, read to the end,
    close (a buffered `open` adds a stat, a terminal probe and two seeks per file, and this
    reads one file per thread of the process at every attempt's end)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


# waitid(2)'s __WALL (Linux 4.7+; not in the os module): children whose exit signal is not
# SIGCHLD too ("clone" children: a raw clone(2) with another exit signal), which a plain waitid
# does not see, so that none of them passes for no child at all.
_WALL = 0x40000000


def _childless() -> bool:
    """This process has no child at all, running or ended and not waited for: one system call
    (waitid(2) reports ECHILD, looking without reaping anything), where walking /proc lists a
    file per thread. Then it has no descendant either: a process orphaned by a child is
    re-parented to a subreaper or init, and would be this process's child if this were one."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT | _WALL)
    except ChildProcessError:
        return True
    except (AttributeError, OSError):  # no waitid here (macOS): the walk decides
        return False
    return False


def _descendants() -> list[int]:
    """The pids of this process's descendants that are running."""
    if _childless():
        return []
    children = _children_of(current_pid())
    if children is None:  # no /proc children files: psutil walks every process instead (~ms)
        try:
            import psutil  # a dependency of aexp

            return [child.pid for child in psutil.Process().children(recursive=True)]
        except Exception:  # psutil cannot read /proc either: the part is left out
            return []
    found: list[int] = []
    while children:
        pid = children.pop()
        found.append(pid)
        children.extend(_children_of(pid) or ())
    return found


def _running_descendants_peak() -> int:
    """Sum of the peak RSS (bytes) of this process's descendants that are still running."""
    return sum(_vm_hwm(pid) for pid in _descendants())


@dataclass
class Usage:
    """The resources of one attempt, measured from `start()` to `finish()`."""

    t0: float
    children_at_start: int  # RUSAGE_CHILDREN's ru_maxrss (bytes) when the attempt started
    reset: bool  # this process's peak mark was reset at the start

    @classmethod
    def start(cls) -> Usage:
        """Begin measuring (resets this process's peak memory mark where Linux allows)."""
        reset = _reset_peak()
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * _RSS_UNIT
        return cls(time.monotonic(), children, reset)

    def wall_s(self) -> float:
        """Seconds since `start` (monotonic clock), to the millisecond."""
        return round(time.monotonic() - self.t0, 3)

    def peak_rss_bytes(self) -> int:
        """The attempt's process tree peak RSS in bytes (module docstring)."""
        # After a reset, the mark that was reset (VmHWM): ru_maxrss also keeps the mark each
        # exiting thread latched (the kernel's signal->maxrss), a heartbeat thread of an earlier
        # attempt included, which no reset clears.
        own = _vm_hwm(os.getpid()) if self.reset else 0
        own = own or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT
        ended = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * _RSS_UNIT
        ended = ended if ended > self.children_at_start else 0
        return own + ended + _running_descendants_peak()

    def finish(self) -> dict[str, Any]:
        """`{"wall_s": seconds, "peak_rss_mb": MiB}` as the attempt's `finish` event records
        them (MiB to a tenth)."""
        return {"wall_s": self.wall_s(), "peak_rss_mb": round(self.peak_rss_bytes() / _MB, 1)}


__all__ = ["Usage"]
