"""The W&B server's own account of runs: what it holds of each, asked through wandb's public API.

A sync asks when an upload's outcome is in doubt (W&B logged an error after writing its marker, an
upload timed out or was cut short, a previous sync was killed, interrupted or starved of disk
while uploading): the server, not a log line, says what arrived (settle.py decides from it). For
each run the answer is what `wandb.Api().run("<entity>/<project>/<run id>")` reports: whether the
run exists, its history line count, the last step of its history (`lastHistoryStep`), its state,
and the artifacts it logged (`logged_artifacts()`: versions per artifact name).

The questions go to a child process, `python -m aexp.sync.wandb_account`, one for all the runs of a
batch: wandb's public API starts wandb's service and sets up wandb process-wide, which this
process must not (it may write repair fragments with `wandb.init` afterwards), and a child can be
bounded and killed like `wandb sync` (a server that hangs costs one timeout). The child reads
`{"timeout": s, "runs": [{"key", "entity", "project", "run_id"}]}` on stdin and writes
`{key: account}` on stdout, an account being `{"exists", "rows", "last_step", "state",
"artifacts", "url"}` or `{"error": "<one line>"}`. Nothing is written anywhere else (its
WANDB_DIR is a temporary directory, removed afterwards); the API key is never on a command line.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Seconds the child may take to start (import wandb, start its service) on top of the timeout.
STARTUP_SECONDS = 30.0
# A question is asked again at most twice, a few seconds apart: a server that fails leaves the
# uploads in doubt (nothing is sent) until a later sync asks it again, rather than holding this
# sync for minutes of retries.
ACCOUNT_RETRIES = {
    "WANDB__GRAPHQL_RETRY_MAX": "2",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "2",
}
# W&B's states of a run whose last upload reached its end (the final file_stream request with
# the exit code). "running" means an upload is under way or was cut off; W&B's cloud turns such
# a run "crashed" once its heartbeat is old, which is no end either.
ENDED_STATES = frozenset({"finished", "failed", "killed", "preempted"})


@dataclass
class Account:
    """What the server holds of one run."""

    exists: bool
    rows: int = 0  # history lines (W&B's historyLineCount)
    last_step: int = -1  # the last step of its history (-1: none)
    state: str = ""  # W&B's state of the run: running, finished, failed, crashed, ...
    artifacts: dict[str, int] = field(default_factory=dict)  # artifact name -> versions logged
    url: str | None = None  # the run's page, as wandb's public API names it (`Run.url`)

    @property
    def ended(self) -> bool:
        """Its last upload reached its end (the exit code arrived)."""
        return self.state in ENDED_STATES


@dataclass(frozen=True)
class RunAddress:
    """Where a run lives on the server. `entity` None: the viewer's default entity."""

    key: str
    entity: str | None
    project: str
    run_id: str


class AccountError(Exception):
    """The server could not be asked (unreachable, timed out, no credentials): one sentence."""


def ask(runs: Sequence[RunAddress], *, timeout: float) -> dict[str, Account | str]:
    """The server's account of each run: {key: Account, or the reason that run could not be
    read}. Raises AccountError when the server could not be asked at all. Bounded: the child
    is killed after `timeout` + STARTUP_SECONDS seconds."""
    if not runs:
        return {}
    from aexp.sync.processes import child_env, kill_tree, mask, tmp_root

    request = {
        "timeout": max(1, int(timeout)),
        "runs": [
            {"key": r.key, "entity": r.entity, "project": r.project, "run_id": r.run_id}
            for r in runs
        ],
    }
    tmp = Path(tempfile.mkdtemp(prefix="aexp-account-", dir=tmp_root()))
    try:
        with open(tmp / "out", "w+b") as out, open(tmp / "err", "w+b") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aexp.sync.wandb_account"],
                env={**child_env(tmp), **ACCOUNT_RETRIES},
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps(request).encode())
                proc.stdin.close()
                deadline = time.monotonic() + timeout + STARTUP_SECONDS
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
            except BaseException:  # Ctrl-C: the question is dropped with its child
                kill_tree(proc)
                raise
            if proc.poll() is None:
                kill_tree(proc)
                raise AccountError(f"W&B did not answer within {timeout:g} s")
            out.seek(0)
            err.seek(0)
            text, errors = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        answer = json.loads(text)
    except ValueError:
        lines = [ln for ln in mask(errors).splitlines() if ln.strip()]
        raise AccountError(
            "W&B could not be asked what it holds"
            + (f" ({' '.join(lines[-1].split())[:300]})" if lines else "")
        ) from None
    if "error" in answer and isinstance(answer["error"], str):
        raise AccountError(f"W&B could not be asked what it holds ({answer['error']})")
    accounts: dict[str, Account | str] = {}
    for run in runs:
        item = answer.get(run.key) or {"error": "no answer"}
        if "error" in item:
            accounts[run.key] = str(item["error"])
        else:
            accounts[run.key] = Account(
                exists=bool(item.get("exists")),
                rows=int(item.get("rows") or 0),
                last_step=int(item.get("last_step", -1)),
                state=str(item.get("state") or ""),
                artifacts={str(k): int(v) for k, v in (item.get("artifacts") or {}).items()},
                url=str(item["url"]) if item.get("url") else None,
            )
    return accounts


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _account_of(api: Any, entity: str, project: str, run_id: str) -> dict[str, Any]:
    from wandb.apis.public.runs import RunNotFoundError

    try:
        run = api.run(f"{entity}/{project}/{run_id}")
    except Exception as exc:  # wandb wraps RunNotFoundError in CommError
        if any(isinstance(e, RunNotFoundError) for e in (exc, getattr(exc, "exc", None))):
            return {"exists": False}
        raise
    versions: dict[str, int] = {}
    for artifact in run.logged_artifacts():
        name = str(artifact.name).rsplit(":", 1)[0]
        versions[name] = versions.get(name, 0) + 1
    return {
        "exists": True,
        "rows": int(run.historyLineCount or 0),
        "last_step": int(run.lastHistoryStep),
        "state": str(run.state or ""),
        "artifacts": versions,
        "url": str(run.url or ""),
    }


def main() -> int:
    """The child: read the request on stdin, write the accounts on stdout (module docstring)."""
    request = json.load(sys.stdin)
    out: dict[str, Any] = {}
    try:
        import wandb

        api = wandb.Api(timeout=min(30, int(request.get("timeout") or 30)))
        default = None
        for item in request["runs"]:
            try:
                entity = item.get("entity") or default or api.default_entity
                default = default or (None if item.get("entity") else entity)
                out[item["key"]] = _account_of(api, entity, item["project"], item["run_id"])
            except Exception as exc:  # this run could not be read; the others still are
                out[item["key"]] = {"error": _one_line(exc)}
    except Exception as exc:  # no credentials, no server
        out = {"error": _one_line(exc)}
    finally:
        # Stop wandb's service now: left to notice this process's end, it leaves its socket
        # directory behind (in /tmp when TMPDIR is too long for a socket path).
        wandb_module = sys.modules.get("wandb")
        teardown = getattr(wandb_module, "teardown", None)
        if callable(teardown):
            with contextlib.suppress(Exception):
                teardown()
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
