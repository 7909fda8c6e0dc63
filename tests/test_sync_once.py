"""Every run reaches W&B exactly once, judged by what the server holds: the real wandb client
offline, the real `wandb sync`, and wandb's own public API asking the loopback W&B stand-in
(tests/wandb_server.py; W&B's cloud cannot run here) what it received.

- a fragment whose `environment` record follows its `exit` record (wandb's quirk under load,
  built here with wandb's own record types): W&B logs an error for it after uploading it whole;
  the server's account says it arrived, it is recorded synced, and no later sync sends it again;
- an upload recorded in flight by a sync that did not live to record its outcome is settled from
  the server's account before anything is sent: arrived (recorded), not arrived (sent once),
  arrived in part (the rest, the artifact and the run's end sent once from the journal);
- the verdict rule itself, input by input.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import NEEDS_WANDB, PYTHON, hermetic_env
from syncing import (  # noqa: F401 (fixtures `copy`, `server`)
    assert_wandb_once,
    binding,
    copy_fixture,
    doc,
    fragments,
    make_sweep,
    quirk,
    server_fixture,
    sync,
    write_doc,
)
from wandb_server import FakeWandbServer, wandb_env

from aexp.sync.wandb_account import Account
from aexp.sync.wandb_settle import NONE, PARTIAL, SENT, decide

pytestmark = NEEDS_WANDB


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Six finished W&B offline runs of the template, each with its result.json artifact."""
    base = tmp_path_factory.mktemp("once")
    root = base / "sweep"
    ids = make_sweep(root, hermetic_env(base / "env"), 6)
    return SimpleNamespace(root=root, ids=ids)


def uploads_started(server: FakeWandbServer) -> list[str]:
    """The runs an upload was started for (the first UpsertBucket of each upload)."""
    return [
        r.run_id
        for r in server.requests
        if r.operation == "UpsertBucket" and (r.variables.get("host") or r.variables.get("program"))
    ]


# -- the stand-in answers what wandb's public API asks --------------------------------------------
def test_the_stand_in_answers_the_public_api_with_what_it_received(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer, tmp_path: Path
) -> None:
    from aexp.sync.wandb_account import RunAddress, ask

    job = sweep.ids[0]
    run_id = binding(copy, job)["run_id"]
    (folder,) = fragments(copy, job)
    env = wandb_env(tmp_path, server.base_url)
    subprocess.run([PYTHON, "-m", "wandb", "sync", str(folder)], env=env, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    project = binding(copy, job)["project"]
    answers = ask(
        [
            RunAddress("known", None, project, run_id),  # the viewer's entity, as W&B's default
            RunAddress("twice", "fake-entity", project, run_id),
            RunAddress("other", None, project, "nosuchrun"),
            RunAddress("elsewhere", None, "another-project", run_id),
        ],
        timeout=60,
    )
    known = answers["known"]
    assert isinstance(known, Account) and known.exists and known.ended
    assert (known.rows, known.last_step, known.state) == (3, 2, "finished")
    assert known.artifacts == {"result.json": 1}
    assert answers["twice"] == known
    assert answers["other"] == Account(exists=False)
    assert answers["elsewhere"] == Account(exists=False)
    asked = {r.operation for r in server.requests if r.operation and r.operation.startswith("Run")}
    assert asked >= {"Run", "RunHistoryKeys", "RunOutputArtifacts"}, asked


def test_an_unreachable_server_is_no_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from aexp.sync.wandb_account import AccountError, RunAddress, ask

    with FakeWandbServer() as srv:
        for key, value in wandb_env(tmp_path, srv.base_url).items():
            monkeypatch.setenv(key, value)
        srv.set_mode("refuse")
        with pytest.raises(AccountError, match="W&B could not be asked"):
            ask([RunAddress("k", None, "p", "abcdefgh")], timeout=10)


# -- the record-order quirk ------------------------------------------------------------------------
def test_fragments_whose_environment_follows_their_exit_are_uploaded_once_and_recorded(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    odd = sweep.ids[1::2]  # three of the six runs, among healthy ones
    for job in odd:
        (folder,) = fragments(copy, job)
        quirk(folder)

    first = sync(copy)

    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[-1] == "wandb: 6 uploaded"
    assert "Traceback" not in first.stderr
    assert_wandb_once(server, copy, sweep.ids)
    for job in sweep.ids:
        assert binding(copy, job)["synced_at"], job
        assert not binding(copy, job)["backends"]["wandb"].get("inflight")
    assert sorted(uploads_started(server)) == sorted(binding(copy, j)["run_id"] for j in sweep.ids)

    server.clear()
    again = sync(copy)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "wandb: 6 already synced"
    assert server.requests == [], "the next sync sends nothing"


def test_the_quirk_in_a_verbose_result_says_why_it_counts(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    from aexp.sync import sync_offline_runs

    (folder,) = fragments(copy, sweep.ids[0])
    quirk(folder)
    (result,) = sync_offline_runs(copy, job_ids=[sweep.ids[0]])
    assert result.ok and not result.skipped
    assert "the server holds all of it" in result.stdout
    assert "UploadNow() after Finish()" in result.stdout, "W&B's error is named, not obeyed"


# -- uploads left in flight ---------------------------------------------------------------------
def _in_flight(root: Path, job: str) -> None:
    """Record the job's fragment in flight, as a sync killed during its upload leaves it."""
    from aexp.wandb_offline.repair import describe, inspect_run

    document = doc(root, job)
    run_id = document["tracker"]["run_id"]
    from syncing import journal_of

    (view,) = inspect_run(root / "workspace" / job, job, run_id, journal_of(root, job)).fragments
    part = document["tracker"]["backends"]["wandb"]
    part["inflight"] = {
        "since": "2026-01-01T00:00:00+00:00",
        "host": "login-2",
        "pid": 4242,
        "fragments": {view.folder.name: describe(view)},
    }
    write_doc(root, job, document)


def _truncated_copy(folder: Path, tmp: Path, rows: int) -> Path:
    """A copy of the fragment that ends after its first `rows` history records (no artifact,
    no exit): what the server got when an upload was cut after those rows."""
    from aexp.wandb_offline.decode import record_class
    from aexp.wandb_offline.framing import read_log, write_log

    target = tmp / folder.name
    shutil.copytree(folder, target)
    (log,) = target.glob("run-*.wandb")
    kept, seen = [], 0
    for payload in read_log(log).payloads:
        record = record_class()()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind in ("exit", "artifact"):
            continue
        if kind == "history":
            if seen == rows:
                continue
            seen += 1
        kept.append(payload)
    log.unlink()
    write_log(log, kept)
    return target


def test_uploads_left_in_flight_are_settled_from_the_server_before_anything_is_sent(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer, tmp_path: Path
) -> None:
    arrived, partial, partial_no_rows, never = sweep.ids[:4]
    env = wandb_env(tmp_path, server.base_url)

    def bare_sync(folder: Path) -> None:
        subprocess.run([PYTHON, "-m", "wandb", "sync", "--include-synced", str(folder)], env=env,
                       check=True, capture_output=True, timeout=120)  # fmt: skip

    # What each killed sync had got through before it died:
    (folder,) = fragments(copy, arrived)
    bare_sync(folder)  # everything: rows, artifact, end
    (marker,) = folder.glob("*.synced")
    marker.unlink()  # and no marker: it was killed before W&B wrote it
    (folder,) = fragments(copy, partial)
    bare_sync(_truncated_copy(folder, tmp_path / "cut1", rows=2))  # 2 of 3 rows, no end
    (folder,) = fragments(copy, partial_no_rows)
    bare_sync(_truncated_copy(folder, tmp_path / "cut2", rows=0))  # the run, no row
    for job in (arrived, partial, partial_no_rows, never):
        _in_flight(copy, job)
    before = {run: n for run, n in ((r, uploads_started(server).count(r)) for r in
              {binding(copy, j)["run_id"] for j in sweep.ids})}  # fmt: skip

    result = sync(copy)

    assert result.returncode == 0, result.stdout + result.stderr
    notes = [line for line in result.stderr.splitlines() if "cut short by an earlier" in line]
    assert len(notes) == 4, result.stderr
    assert_wandb_once(server, copy, sweep.ids)
    started = uploads_started(server)
    run = {job: binding(copy, job)["run_id"] for job in sweep.ids}
    assert started.count(run[arrived]) == before[run[arrived]] == 1, "recorded, not sent again"
    assert started.count(run[never]) == 1, "sent once"
    # The cut uploads: where rows had arrived, the rest followed in one repair fragment (the
    # run's end included); where none had, the fragment itself went again.
    for job, folders in ((partial, 2), (partial_no_rows, 1)):
        assert started.count(run[job]) == 2
        assert server.runs()[run[job]]["exitcode"] == 0 and server.runs()[run[job]]["complete"]
        assert len(fragments(copy, job)) == folders
    for job in sweep.ids:
        part = binding(copy, job)["backends"]["wandb"]
        assert part["synced_at"] and not part.get("inflight"), job

    server.clear()
    assert sync(copy).returncode == 0 and server.requests == []


def test_an_upload_in_flight_waits_while_the_server_cannot_be_asked(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    job = sweep.ids[0]
    _in_flight(copy, job)
    server.set_mode("error500")

    result = sync(copy, job[:8])

    assert result.returncode == 1
    assert "in doubt: an earlier upload of this run was cut short" in result.stderr
    assert uploads_started(server) == [], "nothing is sent while the server cannot say"
    assert binding(copy, job)["backends"]["wandb"]["inflight"], "still in flight"
    server.set_mode("ok")
    assert sync(copy, job[:8]).returncode == 0
    assert_wandb_once(server, copy, [job])


# -- the verdict rule -----------------------------------------------------------------------------
ENTRY = {"first": 0, "last": 9, "rows": 10, "start": 1.0, "artifacts": ["result.json"]}


@pytest.mark.parametrize(
    ("account", "kind", "record"),
    [
        (Account(exists=False), NONE, None),
        (Account(exists=True, last_step=-1, state="running"), NONE, None),
        (Account(True, 10, 9, "finished", {"result.json": 1}), SENT, {**ENTRY}),
        (Account(True, 10, 9, "failed", {"result.json": 1}), SENT, {**ENTRY}),
        (  # rows and artifact there, the end not: recorded, the end follows
            Account(True, 10, 9, "running", {"result.json": 1}),
            PARTIAL,
            {**ENTRY, "ended": False},
        ),
        (  # W&B calls a run whose upload stopped "crashed": no end either
            Account(True, 10, 9, "crashed", {"result.json": 1}),
            PARTIAL,
            {**ENTRY, "ended": False},
        ),
        (  # cut after 4 rows
            Account(True, 4, 3, "running", {}),
            PARTIAL,
            {**ENTRY, "last": 3, "rows": 4, "artifacts": [], "ended": False},
        ),
        (  # every row, not the artifact
            Account(True, 10, 9, "running", {}),
            PARTIAL,
            {**ENTRY, "artifacts": [], "ended": False},
        ),
        (  # the artifact only (history lost on the way)
            Account(True, 0, -1, "finished", {"result.json": 1}),
            PARTIAL,
            {**ENTRY, "first": None, "last": None, "rows": 0},
        ),
    ],
)
def test_the_verdict_on_one_fragment(account: Account, kind: str, record: dict | None) -> None:
    (verdict,) = decide(account, {"f1": ENTRY}, {}, {})
    assert (verdict.kind, verdict.record) == (kind, record)


def test_the_verdict_counts_artifacts_and_steps_of_earlier_fragments() -> None:
    earlier = {"first": 0, "last": 4, "rows": 5, "start": 1.0, "artifacts": ["result.json"]}
    later = {"first": 5, "last": 9, "rows": 5, "start": 2.0, "artifacts": ["result.json"]}
    # The server holds the earlier fragment's artifact only: the later one's did not arrive.
    (verdict,) = decide(Account(True, 10, 9, "finished", {"result.json": 1}), {"f2": later},
                        {"f1": earlier}, {})  # fmt: skip
    assert verdict.kind == PARTIAL and verdict.record["artifacts"] == []
    (verdict,) = decide(Account(True, 10, 9, "finished", {"result.json": 2}), {"f2": later},
                        {"f1": earlier}, {})  # fmt: skip
    assert verdict.kind == SENT
    # Two in flight (a sync that recorded the next round's before it died): in step order.
    both = decide(Account(True, 5, 4, "running", {"result.json": 1}),
                  {"f2": later, "f1": earlier}, {}, {})  # fmt: skip
    assert [(v.folder, v.kind) for v in both] == [("f1", SENT), ("f2", NONE)]


def test_the_verdict_counts_the_rows_of_a_fragment_with_gaps(copy: Path, sweep: SimpleNamespace):
    """A fragment whose steps have gaps (0 and 2 here): how many of its rows the server holds is
    counted from the fragment itself, not from first..last."""
    from aexp.wandb_offline.decode import read_fragment, record_class
    from aexp.wandb_offline.framing import read_log, write_log

    (folder,) = fragments(copy, sweep.ids[0])
    (log,) = folder.glob("run-*.wandb")
    kept = []
    for payload in read_log(log).payloads:
        record = record_class()()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history" and record.history.step.num == 1:
            continue
        kept.append(payload)
    log.unlink()
    write_log(log, kept)
    assert read_fragment(folder).steps == [0, 2]
    gappy = {"first": 0, "last": 2, "rows": 2, "start": 1.0, "artifacts": []}
    (verdict,) = decide(Account(True, 1, 1, "running", {}), {folder.name: gappy}, {},
                        {folder.name: folder})  # fmt: skip
    assert verdict.kind == PARTIAL and (verdict.record["rows"], verdict.record["last"]) == (1, 1)
