"""Upload W&B offline runs from a login node: idempotent, parallel, bounded and honest.

    paths = find_offline_runs(".")           # every offline-run folder of the project
    results = sync_offline_runs(".")         # upload what is not synced yet
    for r in results:
        if not r.ok:
            print(r.path, r.stderr)

Compute nodes write every execution attempt of a run as one offline folder ("fragment")
`<project>/workspace/<job_id>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<run_id>[-N]/`, all fragments of
a run sharing its id. This module uploads them with W&B's own `wandb sync` and judges the
outcome itself, because `wandb sync`'s exit code says nothing (it exits 0 after giving up):

- A fragment counts as synced when W&B wrote its `run-<id>.wandb.synced` marker during this sync
  AND W&B's own log of that sync shows no ERROR for the fragment. The marker alone only proves
  that the run was created on the server: wandb 0.31 writes it even when every history, summary
  or file upload failed. Each `wandb sync` process gets a private `WANDB_DIR` (a temporary
  directory), so its `wandb/logs/debug-sync.*.log` is unambiguous; every line of that log names
  the `.wandb` file it concerns (`sync_path`), which is how several runs are judged one by one
  although they share one `wandb sync` process.
- A fragment that failed is left unsynced: if W&B wrote a marker anyway (a partial upload)
  that marker is removed again, so the next sync retries it. aexp deletes or changes nothing
  else in the workspace (W&B adds its own `run-<id>.wandb.syncstate` on every attempt).
- Fragments of one run are uploaded one at a time in start-time order (folder-name order: the
  start second, then W&B's `-N` suffix); a fragment is only attempted once every earlier one is
  synced. W&B continues the step axis of a resumed run after the last step the server holds;
  the lifecycle logs explicit steps that already continue across attempts, so they arrive as
  logged (docs/sync.md, "Fragments and steps").
- Different runs go in parallel inside one `wandb sync -n <workers>` process per round (round k
  uploads the k-th unsynced fragment of each run; most sweeps need one round). One process for
  many runs costs what a bare `wandb sync -n <workers>` costs; one process per run would pay
  Python and wandb-core start-up for each.
- Every fragment's upload is bounded by `timeout` seconds, measured from the moment W&B starts
  it (its "sender: started" log line): when one exceeds it, the whole process tree (`wandb sync`
  and its `wandb-core`, which runs in a session of its own) is killed, the fragments that had
  finished are judged as usual, the ones cut short in flight are started again in a new process,
  and the one that timed out is reported failed. If a process times out without any fragment
  succeeding, the server is taken to be unreachable and the rest is reported "not attempted".
  W&B's own retries are capped (`WANDB__*_RETRY_MAX`, set only when the environment does not
  set them) so that a failing server ends in an error rather than in the timeout.
- After every fragment of a job's run is synced and the run is finished (`finished_at` set),
  `job.doc["tracker"]` records `synced_at` and `url`, as soon as the run's upload closes (while
  the other uploads go on). A preempted run waiting for its next attempt is uploaded fragment by
  fragment but not marked synced until it is finished.
- Ctrl-C kills the running `wandb sync` process tree; fragments that had completed are judged
  and recorded, every other fragment is left unsynced (no marker), then KeyboardInterrupt is
  re-raised. SIGTERM and SIGHUP get the same cleanup, then SystemExit(128 + signal).

wandb is never imported in this process: `wandb sync` runs as a child process
(`python -m wandb sync`), and `can_sync_here` (called by `status`) only reads the environment
and `~/.netrc`. No API key is ever written anywhere; if one appears in W&B's output it is masked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import netrc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aexp.binding import RUNNING, find_project_root, get_binding
from aexp.errors import AexpError, BindingError, TrackerInitError
from aexp.jobdoc import JobDir, now_iso, read_doc, update_doc
from aexp.lifecycle import is_stale
from aexp.settings import Settings, load_settings
from aexp.wandb_offline import (
    WANDB_DIR,
    FragmentFolder,
    workspace_fragment_folders,
)

__all__ = [
    "RETRY_DEFAULTS",
    "SyncResult",
    "can_sync_here",
    "find_offline_runs",
    "sync_jobs",
    "sync_offline_runs",
]

DEFAULT_BASE_URL = "https://api.wandb.ai"
INSTALL_HINT = "pip install 'agentic-experiments[wandb]'"

#: Retry caps handed to `wandb sync` unless the environment sets them: a failing server then
#: ends in an error after about a minute per request instead of minutes of retries.
RETRY_DEFAULTS = {
    "WANDB__GRAPHQL_RETRY_MAX": "5",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "30",
    "WANDB__FILE_STREAM_RETRY_MAX": "5",
    "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "30",
    "WANDB__FILE_TRANSFER_RETRY_MAX": "5",
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "30",
}

# Paths per `wandb sync` process: keeps the command line far below ARG_MAX.
MAX_PATHS_PER_PROCESS = 400
POLL_SECONDS = 0.05
# Time `wandb sync` may take to start its first upload, on top of the timeout.
STARTUP_GRACE_SECONDS = 30.0

# "wandb: [entity/project/run_id] View run <name> at <url>"
_VIEW_RUN = re.compile(r"\[(?:[^\]\s]*/)?([^/\]\s]+)\] View run .* at (\S+)")

# Skip reasons (SyncResult.skipped).
ALREADY_SYNCED = "already synced"
STILL_EXECUTING = "still executing"


@dataclass
class SyncResult:
    """What happened to one offline-run folder (one fragment of a run)."""

    path: str  # the offline-run folder
    job_id: str | None
    run_id: str | None
    ok: bool
    skipped: str | None  # why nothing was uploaded ("already synced", "still executing", ...)
    returncode: int | None  # of the `wandb sync` process (None: not run, or killed)
    stdout: str
    stderr: str  # W&B's lines about this run; for a failure the last line is the reason
    duration: float  # seconds this fragment's upload took (0 when skipped)


# -- finding offline runs -----------------------------------------------------------------------
def find_offline_runs(root: str | os.PathLike = ".") -> list[Path]:
    """Every W&B offline-run folder of the project at or above `root`, sorted by job id and then
    start time: `<project>/workspace/<job_id>/wandb/offline-run-*`.

    One listing of the workspace and one of each job's `wandb/` directory: the cost grows with
    the number of jobs, not with the files inside runs. Raises ProjectNotFoundError outside a
    signac project.
    """
    workspace = Path(find_project_root(root), "workspace")
    return [
        f.folder for fragments in workspace_fragment_folders(workspace).values() for f in fragments
    ]


# -- credentials and where we are -------------------------------------------------------------
def _base_url() -> str:
    return (os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")


def _netrc_path() -> Path:
    # Where wandb 0.31 looks: $NETRC, else ~/.netrc (or ~/_netrc where only that exists).
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    unix, windows = Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()
    return windows if windows.exists() and not unix.exists() else unix


def can_sync_here() -> bool:
    """True when this host may upload offline runs: W&B credentials are present and it is not
    inside a SLURM allocation (compute nodes have no network; `SLURM_JOB_ID` is set there).

    Credentials, as wandb 0.31 finds them: a non-empty `WANDB_API_KEY`, or a netrc entry
    (`$NETRC`, else `~/.netrc`) with a password for the `host[:port]` of `WANDB_BASE_URL`
    (default api.wandb.ai) -- what `wandb login` writes. Reads the environment and that one
    file only: never imports wandb, never contacts a server (`status` calls it).
    """
    if os.environ.get("SLURM_JOB_ID"):
        return False
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    base = _base_url()
    netloc = urlsplit(base if "://" in base else f"https://{base}").netloc
    if not netloc:
        return False
    try:
        entry = netrc.netrc(str(_netrc_path())).authenticators(netloc)
    except (netrc.NetrcParseError, OSError):  # wandb ignores an unreadable file too
        return False
    return bool(entry and entry[2])


def _app_url() -> str:
    """The W&B web app's URL for the API at WANDB_BASE_URL (WANDB_APP_URL wins if set)."""
    if os.environ.get("WANDB_APP_URL"):
        return os.environ["WANDB_APP_URL"].strip().rstrip("/")
    base = _base_url()
    split = urlsplit(base)
    if split.hostname and split.hostname.startswith("api."):  # api.wandb.ai -> wandb.ai
        netloc = split.netloc.replace(split.hostname, split.hostname[len("api.") :], 1)
        return f"{split.scheme}://{netloc}"
    return base  # a self-hosted server serves its app and its API from one address


# -- one `wandb sync` process -------------------------------------------------------------------
@dataclass
class _PathState:
    """What W&B's debug-sync log said about one .wandb file."""

    started: float | None = None  # log time (epoch seconds)
    closed: float | None = None
    started_seen: float | None = None  # our monotonic clock when we saw it start
    errors: list[str] = field(default_factory=list)


class _SyncLog:
    """Incremental reader of `<WANDB_DIR>/wandb/logs/debug-sync.*.log` (JSON lines)."""

    def __init__(self, wandb_dir: Path) -> None:
        self.logs_dir = wandb_dir / WANDB_DIR / "logs"
        self.paths: dict[str, _PathState] = {}
        self.global_errors: list[str] = []
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
        level = str(entry.get("level", ""))
        msg = str(entry.get("msg", ""))
        path = entry.get("sync_path")
        if level.startswith("ERROR"):
            text = msg + (f": {entry['error']}" if entry.get("error") else "")
            text = " ".join(text.split())[:400]
            if path:
                self.paths.setdefault(path, _PathState()).errors.append(text)
            else:
                self.global_errors.append(text)
        if not path:
            return []
        state = self.paths.setdefault(path, _PathState())
        if msg == "sender: started" and state.started is None:
            state.started = _log_time(entry.get("time"))
            state.started_seen = time.monotonic()
        elif msg == "sender: closed":
            state.closed = _log_time(entry.get("time")) or time.time()
            return [path]
        return []


def _log_time(text: Any) -> float | None:
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


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; [] elsewhere), found before anything is killed:
    wandb-core runs in a session of its own, so killing our child's process group misses it."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`'s process group and every process below it (their own groups too)."""
    below = _descendants(proc.pid)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    own = os.getpgrp()
    for pid in below:
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group not in (own, proc.pid):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _mask(text: str) -> str:
    key = os.environ.get("WANDB_API_KEY", "").strip()
    return text.replace(key, "***") if key and len(key) >= 8 else text


def _child_env(wandb_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in RETRY_DEFAULTS.items():
        env.setdefault(name, value)
    env["WANDB_DIR"] = str(wandb_dir)  # a private log directory for this process only
    env["WANDB_SILENT"] = "false"  # W&B's per-run lines (URL, errors) are captured, not shown
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class _Outcome:
    fragment: FragmentFolder
    ok: bool
    reason: str | None = None  # the failure, last line of stderr
    requeue: bool = False  # cut short in flight by someone else's timeout: try again
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    url: str | None = None


class _Launch:
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
    ) -> None:
        self.fragments = fragments
        self.timeout = timeout
        self.by_path = {str(f.log): f for f in fragments}
        self.marker_before = {
            str(f.log): _mtime(f.marker) for f in fragments if f.marker is not None
        }
        self.tmp = Path(tempfile.mkdtemp(prefix="aexp-sync-", dir=_tmp_root()))
        self.log = _SyncLog(self.tmp)
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
                env=_child_env(self.tmp),
                stdin=subprocess.DEVNULL,
                stdout=self.out,
                stderr=self.err,
                start_new_session=True,  # Ctrl-C reaches us, not W&B; we kill it ourselves
            )
        except BaseException:
            self.out.close()
            self.err.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.timed_out: set[str] = set()
        self.killed = False
        self.texts: tuple[str, str] | None = None
        self.outcomes: list[_Outcome] | None = None
        self.live_ok: set[str] = set()  # judged successful as soon as they closed
        self.closed: list[str] = []  # closed, not judged yet

    def poll(self) -> list[_Outcome]:
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
                return _mask(fh.read().decode("utf-8", errors="replace"))
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if not self.killed:
            self.killed = True
            _kill_tree(self.proc)

    def finish(self) -> list[_Outcome]:
        """Judge every fragment of this process (once it has exited; kills it if not). Safe to
        call again: later calls return the first judgement."""
        if self.outcomes is not None:
            return self.outcomes
        if self.running():
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
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
    ) -> _Outcome:
        state = self.log.paths.get(path, _PathState())
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
        outcome = _Outcome(
            frag,
            ok=False,
            returncode=returncode,
            stdout="\n".join(mine_out),
            duration=round(duration, 3),
            url=urls.get(frag.run_id),
        )
        reason = None
        if path in self.live_ok:  # complete when it closed, whatever happened to the rest
            outcome.ok = True
        elif state.errors:
            reason = f"W&B reported an error: {state.errors[0]}"
        elif path in self.timed_out:
            reason = f"timed out after {self.timeout:g} s"
        elif state.closed is not None and new_marker:
            outcome.ok = True
        elif self.killed:
            outcome.requeue = True
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
            extra = [f"W&B: {e}" for e in [*state.errors, *self.log.global_errors]]
            mine_err = [*mine_err, *dict.fromkeys(extra)]
            if new_marker and frag.marker is not None:
                # W&B wrote the marker although the upload was incomplete (or we cut it short):
                # take it back, so the fragment stays unsynced and is retried next time.
                with contextlib.suppress(OSError):
                    frag.marker.unlink()
            outcome.reason = reason
            mine_err.append(reason or "failed")
        outcome.stderr = "\n".join(mine_err)
        return outcome


def _tmp_root() -> str | None:
    # The current $TMPDIR (tempfile caches the first one it saw for the whole process).
    tmp = os.environ.get("TMPDIR")
    return tmp if tmp and os.path.isdir(tmp) else None


def _mtime(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _read(fh: Any) -> str:
    fh.flush()
    fh.seek(0)
    return _mask(fh.read().decode("utf-8", errors="replace"))


def _run_batch(
    fragments: list[FragmentFolder],
    *,
    workers: int,
    timeout: float,
    project: str | None,
    entity: str | None,
    resync: bool,
    on_done: Any,
) -> list[_Outcome]:
    """Upload `fragments` (at most one per run) with as few `wandb sync` processes as possible.

    `on_done(outcome)` is called for every final outcome as soon as it is known.
    """
    pending = list(fragments)
    outcomes: list[_Outcome] = []
    while pending:
        chunk, pending = pending[:MAX_PATHS_PER_PROCESS], pending[MAX_PATHS_PER_PROCESS:]
        launch = _Launch(
            chunk, workers=workers, timeout=timeout, project=project, entity=entity, resync=resync
        )
        try:
            while launch.running():
                for outcome in launch.poll():
                    on_done(outcome)
                time.sleep(POLL_SECONDS)
            for outcome in launch.poll():
                on_done(outcome)
            results = launch.finish()
        except BaseException:
            # Ctrl-C (or a bug): stop W&B, judge what had completed (recorded as usual), leave
            # every other fragment unsynced (finish takes back markers it cannot vouch for).
            launch.kill()
            for outcome in launch.finish():
                if outcome.ok:
                    on_done(outcome)
            raise
        again = [o.fragment for o in results if o.requeue]
        done = [o for o in results if not o.requeue]
        if launch.timed_out and not any(o.ok for o in results):
            # Nothing got through and something hung: the server is not answering. Stop here
            # instead of spending a timeout on every remaining run.
            n = len(launch.timed_out)
            for frag in [*again, *pending]:
                done.append(
                    _Outcome(
                        frag,
                        ok=False,
                        reason=(
                            f"not attempted: the server did not answer ({n} upload(s) timed out "
                            f"after {timeout:g} s)"
                        ),
                    )
                )
                done[-1].stderr = done[-1].reason or ""
            again, pending = [], []
        for outcome in done:
            on_done(outcome)
        outcomes.extend(done)
        pending = again + pending
    return outcomes


# -- the whole sync ------------------------------------------------------------------------------
@dataclass
class _Run:
    """The fragments of one run id in one job, and what the job document says about it."""

    job_id: str
    run_id: str
    fragments: list[FragmentFolder]
    binding: dict[str, Any] | None  # the job's binding if it is bound to this run id
    project: str | None = None
    entity: str | None = None


def _result(
    frag: FragmentFolder,
    *,
    ok: bool,
    skipped: str | None = None,
    stdout: str = "",
    stderr: str = "",
    returncode: int | None = None,
    duration: float = 0.0,
) -> SyncResult:
    return SyncResult(
        path=str(frag.folder),
        job_id=frag.job_id,
        run_id=frag.run_id,
        ok=ok,
        skipped=skipped,
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        duration=duration,
    )


def _record_synced(job: Any, run: _Run, url: str | None) -> bool:
    """Record `synced_at` and `url` in the job's binding if it still describes this finished run
    (checked under the job lock, so an attempt that started meanwhile is not marked synced)."""
    seen_attempts = (run.binding or {}).get("attempts")

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        binding = get_binding(job, doc)
        if (
            binding is None
            or binding["run_id"] != run.run_id
            or not binding.get("finished_at")
            or binding["state"] == RUNNING
            or binding.get("attempts") != seen_attempts
        ):
            return None
        return {"tracker": {**binding, "synced_at": now_iso(), "url": url or binding.get("url")}}

    try:
        stored = update_doc(job, change)
    except (BindingError, OSError):
        return False
    return bool((stored.get("tracker") or {}).get("synced_at"))


def _derived_url(run: _Run) -> str | None:
    project = run.project or (run.binding or {}).get("project")
    entity = run.entity
    if not (project and entity):
        return None
    return f"{_app_url()}/{entity}/{project}/runs/{run.run_id}"


def sync_offline_runs(
    root: str | os.PathLike = ".",
    *,
    dry_run: bool = False,
    job_ids: Iterable[str] | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    resync: bool = False,
    progress: bool = False,
    settings: Settings | None = None,
) -> list[SyncResult]:
    """Upload the W&B offline runs of the project at or above `root`; one result per fragment.

    dry_run   report what would be uploaded; starts no process, contacts nothing, writes nothing
    job_ids   only these jobs (full ids); default every job with offline runs
    workers   runs uploaded in parallel (default `[sync] workers` of signac.rc)
    timeout   seconds one fragment's upload may take (default `[sync] timeout`)
    resync    upload fragments that carry W&B's synced marker again
    progress  a progress bar on stderr
    settings  the project's Settings (default: read from its signac.rc)

    Never raises for a failed upload: the result says `ok=False` with the reason as the last line
    of `stderr`, the fragment stays unsynced and is retried by the next call. Raises
    ProjectNotFoundError outside a project, TrackerInitError when there is something to upload and
    the wandb package is not installed, and KeyboardInterrupt after cleaning up (see the module
    docstring).
    """
    # Job directories and documents are all this needs of the project: no signac import, so
    # a pass with nothing left to upload costs little more than the interpreter's start.
    project_root = find_project_root(root)
    if settings is None:
        settings = load_settings(project_root)
    workers = int(workers or settings.sync_workers)
    timeout = float(timeout or settings.sync_timeout)
    workspace = os.path.join(project_root, "workspace")
    found = workspace_fragment_folders(Path(workspace), job_ids)

    results: dict[Path, SyncResult] = {}
    runs: list[_Run] = []
    for job_id, fragments in found.items():
        job = JobDir(job_id, os.path.join(workspace, job_id))
        try:
            doc = read_doc(job)
            binding = get_binding(job, doc)
        except BindingError as exc:
            for frag in fragments:
                results[frag.folder] = _result(
                    frag, ok=True, skipped=f"job document unreadable: {exc}"
                )
            continue
        executing = binding is not None and binding["state"] == RUNNING
        if executing and not is_stale(doc, settings.stale_after):
            for frag in fragments:
                results[frag.folder] = _result(frag, ok=True, skipped=STILL_EXECUTING)
            continue
        by_run: dict[str, list[FragmentFolder]] = {}
        for frag in fragments:
            if frag.log is None:
                results[frag.folder] = _result(
                    frag, ok=True, skipped="no run-<id>.wandb transaction log in this folder"
                )
                continue
            by_run.setdefault(frag.run_id, []).append(frag)
        for run_id, frags in by_run.items():
            mine = binding if binding is not None and binding["run_id"] == run_id else None
            extra = (mine or {}).get("extra") or {}
            runs.append(
                _Run(
                    job_id,
                    run_id,
                    frags,
                    mine,
                    project=(mine or {}).get("project") or None,
                    entity=extra.get("entity") or None,
                )
            )

    # What is left to upload, per run, in order.
    # (A fragment with a marker counts as synced wherever it is in the order: it is on the
    # server, and uploading it again would only duplicate it.)
    todo: dict[tuple[str, str], list[FragmentFolder]] = {}
    for run in runs:
        left = []
        for frag in run.fragments:
            if frag.synced() and not resync:
                results[frag.folder] = _result(frag, ok=True, skipped=ALREADY_SYNCED)
            else:
                left.append(frag)
        todo[(run.job_id, run.run_id)] = left

    if dry_run:
        for left in todo.values():
            for frag in left:
                results[frag.folder] = _result(frag, ok=True, stdout="dry run: would sync")
        return [results[p] for p in sorted(results, key=_result_order(found))]

    total = sum(len(left) for left in todo.values())
    if total and importlib.util.find_spec("wandb") is None:
        raise TrackerInitError(
            f"uploading W&B offline runs needs the wandb package; {INSTALL_HINT}."
        )
    bar = _progress_bar(total) if progress and total else None
    uploaded: dict[tuple[str, str], bool] = {}  # run -> something new got uploaded
    urls: dict[tuple[str, str], str] = {}
    run_of = {(r.job_id, r.run_id): r for r in runs}

    counted: set[Path] = set()

    def done(outcome: _Outcome) -> None:
        """Take one fragment's outcome (a success can come twice: as soon as its upload closed,
        then with the process's exit code; only the first one counts and records)."""
        frag = outcome.fragment
        advanced = 1
        results[frag.folder] = _result(
            frag,
            ok=outcome.ok,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            returncode=outcome.returncode,
            duration=outcome.duration,
        )
        key = (frag.job_id, frag.run_id)
        if frag.folder in counted:
            return
        counted.add(frag.folder)
        if outcome.ok:
            uploaded[key] = True
            if outcome.url:
                urls[key] = outcome.url
            left = todo[key]
            if left and left[0] is frag:
                left.pop(0)
            if not left:
                _finish_run(run_of[key])
        else:
            for later in todo[key][1:]:
                results[later.folder] = _result(
                    later,
                    ok=True,
                    skipped=f"waiting: an earlier fragment of run {frag.run_id} did not sync",
                )
                advanced += 1
            todo[key] = []
        if bar is not None:
            bar.update(advanced)

    def _finish_run(run: _Run) -> None:
        key = (run.job_id, run.run_id)
        if run.binding is None:
            return
        if run.binding.get("synced_at") and not uploaded.get(key):
            return
        url = urls.get(key) or _derived_url(run)
        _record_synced(JobDir(run.job_id, os.path.join(workspace, run.job_id)), run, url)

    # Runs already fully synced (by an earlier call, or a bare `wandb sync`) but not recorded.
    for key, left in todo.items():
        run = run_of[key]
        if not left and run.binding is not None and not run.binding.get("synced_at"):
            _finish_run(run)

    try:
        with _terminate_cleanly():
            _rounds(todo, run_of, workers=workers, timeout=timeout, resync=resync, on_done=done)
    finally:
        if bar is not None:
            bar.close()
    return [results[p] for p in sorted(results, key=_result_order(found))]


def _rounds(
    todo: dict[tuple[str, str], list[FragmentFolder]],
    run_of: Mapping[tuple[str, str], _Run],
    **options: Any,
) -> None:
    """Upload round after round: each round the first fragment left of every run."""
    while any(todo.values()):
        wave = [left[0] for left in todo.values() if left]
        groups: dict[tuple[str | None, str | None], list[FragmentFolder]] = {}
        for frag in wave:
            run = run_of[(frag.job_id, frag.run_id)]
            groups.setdefault((run.project, run.entity), []).append(frag)
        for (project, entity), frags in groups.items():
            _run_batch(frags, project=project, entity=entity, **options)
        if any(left and left[0] in wave for left in todo.values()):  # never expected
            raise RuntimeError("aexp.sync: a fragment was neither synced nor failed")


class _Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP (a killed job, a closed login session) like Ctrl-C while
    uploading: stop W&B, keep what completed, then exit with 128 + signal. Only where the
    signal's default action is in force, and only in the main thread (signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    except _Terminated as exc:
        raise SystemExit(128 + exc.signum) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _result_order(found: Mapping[str, list[FragmentFolder]]) -> Any:
    position = {
        frag.folder: (job_id, i) for job_id, frags in found.items() for i, frag in enumerate(frags)
    }
    return lambda path: position.get(path, ("", 0))


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc="sync", unit="run", file=sys.stderr, leave=False)


# -- for the flow operation ----------------------------------------------------------------------
def sync_jobs(jobs: Iterable[Any], settings: Settings, **kwargs: Any) -> list[SyncResult]:
    """Upload the offline runs of `jobs` (the `sync_offline` operation). Prints one line per
    failure to stderr and never raises for a failed upload: the job stays unsynced and the
    operation is eligible again at the next `run`."""
    jobs = list(jobs)
    if not jobs:
        return []
    root = jobs[0].project.path
    try:
        results = sync_offline_runs(
            root, job_ids=[job.id for job in jobs], settings=settings, **kwargs
        )
    except AexpError as exc:
        print(f"sync_offline: error: {exc}", file=sys.stderr)
        return []
    for r in results:
        if not r.ok:
            reason = next(
                (ln for ln in reversed((r.stderr or "").splitlines()) if ln.strip()), "failed"
            )
            print(
                f"sync_offline: job {r.job_id} run {r.run_id} not synced ({r.path}): {reason}",
                file=sys.stderr,
            )
    return results
