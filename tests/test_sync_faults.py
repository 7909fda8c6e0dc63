"""A sync ended by anything, then synced again: every journal row exactly once on W&B and on
MLflow, each artifact version once.

The runs are real (the template's workflow, the real wandb client offline, backends `wandb,
mlflow`); the uploads are the real `wandb sync` against the loopback W&B stand-in
(tests/wandb_server.py), slowed a little per request so that an interruption lands mid-upload,
and MLflow's own client replaying into a sqlite store. Each trial interrupts one `aexp
sync-offline` at a random moment (seeded, printed):

- SIGINT (Ctrl-C) and SIGTERM: the sync ends within seconds, says in one line what did not finish;
- kill -9: nothing is cleaned up; the `wandb sync` it started runs on to its end;
- the disk filling up during the sync (a small tmpfs the test mounts, holding the project and the
  sync's temporary files), then room again;

and then syncs again until a pass succeeds. What the servers hold is compared with each run's
journal.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import NEEDS_WANDB, hermetic_env
from mlflow_server import copy_store
from syncing import (
    assert_mlflow_once,
    assert_wandb_once,
    descendants,
    make_sweep,
    start_sync,
    sync_until_done,
    wait_gone,
)
from wandb_server import FakeWandbServer, wandb_env

pytestmark = NEEDS_WANDB

RUNS = 8
SIGNAL_TRIALS = 4  # per signal: SIGINT, SIGTERM, SIGKILL
DISK_TRIALS = 3
SEED = int(os.environ.get("AEXP_FAULT_SEED", "1906"))
# Seconds each request about a run's data waits at the stand-in: a sync of RUNS runs takes a
# few seconds, so that a random moment often falls inside an upload.
DELAY = 0.05


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("faults")
    root = base / "sweep"
    env = hermetic_env(base / "env")
    ids = make_sweep(root, env, RUNS, backend="wandb, mlflow")
    return SimpleNamespace(root=root, ids=ids)


@contextlib.contextmanager
def _trial(
    sweep: SimpleNamespace, root: Path, empty_store: Path, home: Path
) -> Iterator[tuple[FakeWandbServer, dict[str, str], Path]]:
    """One trial: a copy of the sweep at `root` with a fresh MLflow store in it, a fresh W&B
    stand-in answering slowly; yields (server, the sync's environment, the store)."""
    shutil.copytree(sweep.root, root, symlinks=True)
    store = root / "store.db"
    copy_store(empty_store, store)
    with FakeWandbServer() as server:
        server.delay = DELAY
        env = wandb_env(home, server.base_url)
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
        yield server, env, store


def _interrupt(proc: subprocess.Popen, sig: int, after: float) -> tuple[list[int], float]:
    """Send `sig` to the sync `after` seconds from now (or when it ends); returns the processes
    it had started then, and how long it took to end after the signal."""
    deadline = time.monotonic() + after
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    left = descendants(proc.pid)
    sent = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=120)
    return left, time.monotonic() - sent


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_a_sync_interrupted_at_random_moments_then_synced_again_sends_everything_once(
    sweep: SimpleNamespace, tmp_path: Path, empty_store: Path, sig: int
) -> None:
    rng = random.Random(SEED + sig)
    landed = 0
    for trial in range(SIGNAL_TRIALS):
        root = tmp_path / f"t{trial}"
        with _trial(sweep, root, empty_store, tmp_path / f"e{trial}") as (server, env, store):
            after = rng.uniform(0.5, 8.0)
            print(f"trial {trial}: {signal.Signals(sig).name} after {after:.2f} s")
            proc = start_sync(root, env)
            left, took = _interrupt(proc, sig, after)
            out, err = proc.stdout.read(), proc.stderr.read()
            print(f"  exit {proc.returncode}, {took:.1f} s after the signal: {err[-300:]!r}")
            assert "Traceback" not in err, err
            finished = any(line.startswith(("wandb:", "mlflow:")) for line in out.splitlines())
            if sig != signal.SIGKILL and not finished:  # it landed while the sync worked
                landed += 1
                assert proc.returncode == 128 + sig, (proc.returncode, err)
                assert took < 15, f"ended {took:.1f} s after the signal"
                said = [line for line in err.splitlines() if line.startswith("interrupted:")]
                assert len(said) == 1, err
            if sig == signal.SIGKILL:
                landed += proc.returncode == -signal.SIGKILL
                wait_gone(left)  # its `wandb sync` runs on to its end, holding the claims
            server.delay = 0.0
            sync_until_done(root, env)
            assert_wandb_once(server, root, sweep.ids)
            assert_mlflow_once(f"sqlite:///{store}", root, sweep.ids)
    assert landed >= SIGNAL_TRIALS // 2, "most signals must land while the sync works"


# -- a full disk ---------------------------------------------------------------------------------
def _mount_tmpfs(where: Path, size_mb: int) -> None:
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            "a full disk needs a small tmpfs, and mounting one failed here "
            f"({done.stderr.strip() or done.returncode}); CI runs as root, where it works"
        )


def _fill(path: Path) -> None:
    """Write into `path` until the file system is full."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass
    # What a full disk leaves: not a byte more, even for small writes.
    with open(path, "ab", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


@pytest.mark.timeout(900)
def test_a_disk_that_fills_up_during_a_sync_then_has_room_again_sends_everything_once(
    sweep: SimpleNamespace, tmp_path: Path, empty_store: Path
) -> None:
    rng = random.Random(SEED)
    size = sum(f.stat().st_size for f in sweep.root.rglob("*") if f.is_file())
    size_mb = size // (1 << 20) + empty_store.stat().st_size // (1 << 20) + 24
    for trial in range(DISK_TRIALS):
        disk = tmp_path / f"disk{trial}"
        _mount_tmpfs(disk, size_mb)
        try:
            root = disk / "project"
            home = tmp_path / f"e{trial}"
            with _trial(sweep, root, empty_store, home) as (server, env, store):
                env["TMPDIR"] = str(disk / "tmp")  # the sync's own temporary files too
                (disk / "tmp").mkdir()
                after = rng.uniform(0.3, 6.0)
                print(f"trial {trial}: disk full after {after:.2f} s")
                proc = start_sync(root, env)
                time.sleep(after)
                filler = disk / "filler"
                _fill(filler)
                proc.wait(timeout=300)
                err = proc.stderr.read()
                print(f"  exit {proc.returncode}: {proc.stdout.read()[-200:]!r} {err[-300:]!r}")
                assert "Traceback" not in err, err
                filler.unlink()  # room again
                server.delay = 0.0
                passes = sync_until_done(root, env)
                print(f"  then {len(passes)} pass(es): {passes[-1].stdout.strip()!r}")
                assert_wandb_once(server, root, sweep.ids)
                assert_mlflow_once(f"sqlite:///{store}", root, sweep.ids)
        finally:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
