"""One `wandb sync` process over several fragments, and its supervision.

A fragment counts as synced at once when W&B wrote its `run-<id>.wandb.synced` marker during this
process AND W&B's own log of this process shows no ERROR for it (wandb_sync_log.py). The exit code
says nothing (wandb 0.31 exits 0 after giving up), and the marker alone only proves that the run
was created on the server: wandb 0.31 writes it even when every history, summary or file upload
failed, and W&B sometimes logs an ERROR for an upload that arrived whole. So every other ending of
an upload that started is a doubt (`Outcome.doubt`), never a verdict: the server's own account
settles it (wandb_settle.py) before anything of the run is sent again. An upload that provably
never started (not named in W&B's log of a process that ran to its end) failed, and nothing of it
arrived; a marker W&B wrote for it is removed again. A doubt keeps W&B's marker: the settling
removes it when the server holds nothing of the fragment. Nothing
else in the workspace is deleted or changed (W&B adds its own `run-<id>.wandb.syncstate` on
every attempt).

Every fragment's upload is bounded by `timeout` seconds, measured from the moment W&B starts it
(its "sender: started" log line); the process gets STARTUP_GRACE_SECONDS more to start at all.
When one exceeds it, the whole process tree is killed: `wandb sync` and its `wandb-core`, which
runs in a session of its own, so the tree is listed (psutil) before anything is killed. The
fragments that had finished are judged as usual, the ones that had not started yet are marked for
another try (`requeue`), the one that timed out and the others cut short in flight are doubts.

The child gets a private `WANDB_DIR` (a temporary directory, removed afterwards), W&B's retry caps
unless the environment sets them (RETRY_DEFAULTS), and `start_new_session`, so that Ctrl-C reaches
aexp and not W&B. An API key that appears in W&B's output is masked.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aexp.sync.claims import hand_over
from aexp.sync.processes import child_env, kill_tree, mask, tmp_root
from aexp.sync.wandb_sync_log import PathState, SyncLog
from aexp.wandb_offline import FragmentFolder

# Time `wandb sync` may take to start its first upload, on top of the timeout.
STARTUP_GRACE_SECONDS = 30.0

# "wandb: [entity/project/run_id] View run <name> at <url>"
_VIEW_RUN = re.compile(r"\[(?:[^\]\s]*/)?([^/\]\s]+)\] View run .* at (\S+)")


@dataclass
class Outcome:
    """The judgement of one fragment uploaded by one `wandb sync` process."""

    fragment: FragmentFolder
    ok: bool
    reason: str | None = None  # the failure, last line of stderr
    requeue: bool = False  # not started when someone else's timeout ended the process: again
    doubt: bool = False  # failed after its upload started: what arrived is the server's to say
    unanswered: bool = False  # not attempted: the server did not answer others
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    url: str | None = None


class Launch:
    """One `wandb sync` process over several fragments (at most one per run)."""

    def __init__(
        self,
        fragments: list[FragmentFolder],
        *,
        workers: int,
        timeout: float,
        project: str | None,
        entity: str | None,
        resync: bool,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.fragments = fragments
        self.timeout = timeout
        self.by_path = {str(f.log): f for f in fragments}
        self.marker_before = {
            str(f.log): _mtime(f.marker) for f in fragments if f.marker is not None
        }
        self.tmp = Path(tempfile.mkdtemp(prefix="aexp-sync-", dir=tmp_root()))
        self.log = SyncLog(self.tmp)
        args = [
            sys.executable,
            "-m",
            "wandb",
            "sync",
            "-n",
            str(max(1, min(workers, len(fragments)))),
        ]
        if project:
            args += ["-p", project]
        if entity:
            args += ["-e", entity]
        if resync:
            args.append("--include-synced")
        args += list(self.by_path)
        self.out = open(self.tmp / "stdout", "w+b")  # noqa: SIM115 (closed in finish)
        self.err = open(self.tmp / "stderr", "w+b")  # noqa: SIM115
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                args,
                env=child_env(self.tmp),
                stdin=subprocess.DEVNULL,
                stdout=self.out,
                stderr=self.err,
                start_new_session=True,  # Ctrl-C reaches us, not W&B; we kill it ourselves
                # The jobs' claims: held by `wandb sync` as long as it runs (claims.py).
                pass_fds=tuple(pass_fds),
            )
        except BaseException:
            self.out.close()
            self.err.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.pass_fds = list(pass_fds)
        hand_over(self.pass_fds, self.proc.pid)
        self.timed_out: set[str] = set()
        self.killed = False
        self.texts: tuple[str, str] | None = None
        self.outcomes: list[Outcome] | None = None
        self.live_ok: set[str] = set()  # judged successful as soon as they closed
        self.closed: list[str] = []  # closed, not judged yet

    def poll(self) -> list[Outcome]:
        """Advance: read W&B's log, kill the process tree on a timeout, and return the fragments
        that finished successfully since the last call (judged at once, so their runs can be
        recorded while the other uploads go on)."""
        self.closed.extend(self.log.poll())
        live = []
        if self.closed:
            stderr = self._peek_stderr()
            urls = {m.group(1): m.group(2) for m in _VIEW_RUN.finditer(stderr)}
            for path in list(self.closed):
                frag = self.by_path.get(path)
                if frag is None or self.log.paths[path].errors:
                    self.closed.remove(path)  # judged at the end
                elif frag.run_id in urls:  # wait for W&B's line with the run's URL
                    self.closed.remove(path)
                    if _mtime(frag.marker) not in (None, self.marker_before.get(path)):
                        self.live_ok.add(path)
                        live.append(self._judge(path, frag, "", stderr, None, urls))
        now = time.monotonic()
        for path, state in self.log.paths.items():
            if (
                path in self.by_path
                and state.closed is None
                and state.started_seen is not None
                and now - state.started_seen > self.timeout
            ):
                self.timed_out.add(path)
        started = any(s.started_seen for p, s in self.log.paths.items() if p in self.by_path)
        if not started and now - self.t0 > self.timeout + STARTUP_GRACE_SECONDS:
            # W&B got stuck before it started uploading anything.
            self.timed_out.update(self.by_path)
        if self.timed_out and self.proc.poll() is None:
            self.kill()
        return live

    def _peek_stderr(self) -> str:
        try:
            with open(self.tmp / "stderr", "rb") as fh:
                return mask(fh.read().decode("utf-8", errors="replace"))
        except OSError:
            return ""

    def running(self) -> bool:
        """Whether the `wandb sync` process is still running."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the process tree (once); `finish` then judges what had completed."""
        if not self.killed:
            self.killed = True
            kill_tree(self.proc)

    def finish(self) -> list[Outcome]:
        """Judge every fragment of this process (once it has exited; kills it if not). Safe to
        call again: later calls return the first judgement."""
        if self.outcomes is not None:
            return self.outcomes
        if self.running():
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        hand_over(self.pass_fds, os.getpid())  # the claims are this process's alone again
        self.log.poll()
        if self.texts is None:
            self.texts = (_read(self.out), _read(self.err))
            self.out.close()
            self.err.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        stdout, stderr = self.texts
        returncode = None if self.killed else self.proc.returncode
        urls = {m.group(1): m.group(2) for m in _VIEW_RUN.finditer(stderr)}
        self.outcomes = [
            self._judge(path, frag, stdout, stderr, returncode, urls)
            for path, frag in self.by_path.items()
        ]
        return self.outcomes

    def _judge(
        self,
        path: str,
        frag: FragmentFolder,
        stdout: str,
        stderr: str,
        returncode: int | None,
        urls: Mapping[str, str],
    ) -> Outcome:
        state = self.log.paths.get(path, PathState())
        marker_now = _mtime(frag.marker) if frag.marker is not None else None
        new_marker = marker_now is not None and marker_now != self.marker_before.get(path)
        tag = re.compile(
            rf"\[(?:[^\]\s]*/)?{re.escape(frag.run_id)}\]|{re.escape(frag.folder.name)}"
        )
        mine_err = [line for line in stderr.splitlines() if tag.search(line)]
        mine_out = [line for line in stdout.splitlines() if tag.search(line)]
        if state.started is not None and state.closed is not None:
            duration = max(0.0, state.closed - state.started)
        else:
            duration = time.monotonic() - (state.started_seen or self.t0)
        outcome = Outcome(
            frag,
            ok=False,
            returncode=returncode,
            stdout="\n".join(mine_out),
            duration=round(duration, 3),
            url=urls.get(frag.run_id),
        )
        reason = None
        started = state.started is not None or new_marker or not self.log.seen_any
        if path in self.live_ok:  # complete when it closed, whatever happened to the rest
            outcome.ok = True
        elif state.errors:
            reason = f"W&B reported an error: {state.errors[0]}"
        elif path in self.timed_out:
            reason = f"timed out after {self.timeout:g} s"
        elif state.closed is not None and new_marker:
            outcome.ok = True
        elif self.killed and not started:
            outcome.requeue = True
            reason = "not started (another upload in the same wandb sync process timed out)"
        elif self.killed:
            reason = "cut short (another upload in the same wandb sync process timed out)"
        elif state.closed is not None:
            reason = "wandb sync finished without writing the .wandb.synced marker"
        else:
            lines = [ln for ln in stderr.splitlines() if ln.strip()]
            last = next((ln for ln in reversed(lines) if "error" in ln.lower()), None)
            last = last or (lines[-1] if lines else None)
            reason = f"wandb sync exited with code {returncode} without uploading this run" + (
                f" ({last.strip()[:300]})" if last else ""
            )
        if not outcome.ok:
            outcome.doubt = started and not outcome.requeue
            extra = [f"W&B: {e}" for e in [*state.errors, *self.log.global_errors]]
            mine_err = [*mine_err, *dict.fromkeys(extra)]
            if new_marker and frag.marker is not None and not outcome.doubt:
                # W&B wrote the marker although nothing of the upload can have arrived: take it
                # back, so the fragment stays unsynced and is sent next time. A doubt keeps its
                # marker until the server's account decides (wandb_settle.py removes it when
                # nothing arrived; a bare `wandb sync` then skips what did).
                with contextlib.suppress(OSError):
                    frag.marker.unlink()
            outcome.reason = reason
            mine_err.append(reason or "failed")
        outcome.stderr = "\n".join(mine_err)
        return outcome


def _mtime(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _read(fh: IO[bytes]) -> str:
    fh.flush()
    fh.seek(0)
    return mask(fh.read().decode("utf-8", errors="replace"))
