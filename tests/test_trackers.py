"""The tracker adapters (noop, wandb), their registry, and what they leave on disk.

The W&B tests drive the real wandb client offline and read the offline run back from its `.wandb`
transaction log with `wandb_records` below (LevelDB-log framing + wandb's own protobuf `Record`),
which one test cross-checks against wandb's own reader, `wandb leet inspect --json`. The cloud API
(`WandbAdapter.list_runs`) is the only thing mocked: no W&B server runs here.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import struct
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import PYTHON, run_cmd, settled_log

from aexp import (
    TrackerInitError,
    TrackerUsageError,
    bind_tracker,
    create_run,
    get_binding,
    run_lifecycle,
)
from aexp.journal import decode_metrics
from aexp.trackers import ADAPTERS, NoopAdapter, RunHandle, get_adapter
from aexp.trackers.noop import read_event_log
from aexp.validate import shorten

INSTALL_HINT = "pip install 'agentic-experiments[wandb]'"


# -- helpers -----------------------------------------------------------------------------------
class FakeScalar:
    """What a numpy scalar (np.float32(0.25), np.int64(3)) looks like to aexp: 0-d, `.item()`.

    numpy is not a dependency of aexp (nor installed in the test venv), so this stands in for it.
    """

    ndim = 0

    def __init__(self, value: Any) -> None:
        self.value = value

    def item(self) -> Any:
        return self.value


class FakeArray:
    """A 1-d array: has `.item()` (which fails for size > 1) but is not a scalar."""

    ndim = 1

    def item(self) -> Any:
        raise ValueError("can only convert an array of size 1 to a Python scalar")


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every line of an events.jsonl, parsed (a fresh reader: nothing shared with the writer)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def assert_utc_iso(timestamp: str) -> datetime:
    parsed = datetime.fromisoformat(timestamp)
    assert parsed.tzinfo is not None, timestamp
    assert parsed.utcoffset() == timedelta(0), timestamp
    assert abs((datetime.now(parsed.tzinfo) - parsed).total_seconds()) < 60
    return parsed


def offline_folders(workdir: str | os.PathLike, run_id: str) -> list[Path]:
    """The W&B offline folders ("fragments") of `run_id` under `<workdir>/wandb/`.

    wandb names them `offline-run-<YYYYMMDD_HHMMSS>-<id>`, with a `-1`, `-2`, ... suffix when the
    same id starts twice within one second.
    """
    pattern = re.compile(rf"^offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?$")
    root = Path(workdir) / "wandb"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and pattern.match(p.name))


def wandb_records(wandb_file: str | os.PathLike) -> list[Any]:
    """Decode a `run-<id>.wandb` transaction log into wandb's protobuf `Record`s, offline.

    Format: a 7-byte header (`:W&B`, magic 0xBEE1, version), then LevelDB-log framing: 32 KiB
    blocks of chunks, each `<crc32 u32, length u16, type u8>` + payload; type 1 is a whole record,
    2/3/4 the first/middle/last piece of one split across blocks.
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(wandb_file).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), "not a W&B transaction log"
    block, pos, pieces, payloads = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too small for a header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            break
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pieces = chunk
        elif kind == 3:
            pieces += chunk
        elif kind == 4:
            payloads.append(pieces + chunk)
    records = []
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def read_offline_run(folder: Path) -> dict[str, Any]:
    """What an offline run folder says about its run: id, project, group, tags, config, history."""
    wandb_file = settled_log(folder)
    out: dict[str, Any] = {"history": [], "exit_code": None, "kinds": []}
    for record in wandb_records(wandb_file):
        kind = record.WhichOneof("record_type")
        out["kinds"].append(kind)
        if kind == "run":
            run = record.run
            out.update(
                run_id=run.run_id,
                project=run.project,
                group=run.run_group,
                tags=list(run.tags),
                config={
                    (item.key or ".".join(item.nested_key)): json.loads(item.value_json)
                    for item in run.config.update
                    if (item.key or ".".join(item.nested_key)) != "_wandb"
                },
            )
        elif kind == "history":
            row = {
                (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                for item in record.history.item
            }
            out["history"].append((record.history.step.num, row))
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


# -- registry ----------------------------------------------------------------------------------
def test_registry_maps_names_to_adapters(tmp_path):
    assert set(ADAPTERS) >= {"noop", "wandb"}
    for name, cls in ADAPTERS.items():
        assert cls.name == name
    adapter = get_adapter("noop", log_root=tmp_path)
    assert isinstance(adapter, NoopAdapter)
    assert adapter.log_root == tmp_path


def test_registry_unknown_name_lists_known_ones():
    with pytest.raises(TrackerInitError) as info:
        get_adapter("comet")
    message = str(info.value)
    assert "'comet'" in message
    for name in ADAPTERS:
        assert name in message


# -- noop: the event log -----------------------------------------------------------------------
def _noop_run(tmp_path: Path, **overrides: Any) -> tuple[NoopAdapter, RunHandle]:
    adapter = NoopAdapter(log_root=tmp_path / "runs")
    kwargs: dict[str, Any] = {
        "project": "proj",
        "group": "H1/E1/full",
        "tags": ["H1", "E1", "full"],
        "config": {"seed": 0, "opt.lr": 0.1, "job_id": "abc"},
        "notes": "a note",
        "offline": True,
    }
    kwargs.update(overrides)
    return adapter, adapter.init_run(**kwargs)


def test_noop_init_run_writes_the_init_event(tmp_path):
    adapter, handle = _noop_run(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{8}", handle.id)
    assert (handle.url, handle.project, handle.group) == (None, "proj", "H1/E1/full")
    events_path = tmp_path / "runs" / handle.id / "events.jsonl"
    assert handle.extra["events"] == str(events_path)
    assert "_journal" not in handle.persistent_extra()
    json.dumps(handle.persistent_extra())  # what the binding stores must be JSON

    (event,) = read_events(events_path)
    assert_utc_iso(event.pop("timestamp"))
    assert event == {
        "event": "init_run",
        "run_id": handle.id,
        "backends": ["noop"],
        "project": "proj",
        "group": "H1/E1/full",
        "tags": ["H1", "E1", "full"],
        "config": {"seed": 0, "opt.lr": 0.1, "job_id": "abc"},
        "notes": "a note",
        "offline": True,
    }
    other = adapter.init_run(
        project="proj", group="g", tags=[], config={}, notes=None, offline=False
    )
    assert other.id != handle.id


def test_noop_every_event_is_flushed_when_written(tmp_path):
    """Another reader sees each event right after the call returns, long before finish."""
    adapter, handle = _noop_run(tmp_path)
    events_path = Path(handle.extra["events"])
    artifact = tmp_path / "result.json"
    artifact.write_text('{"accuracy": 0.9}')

    assert [e["event"] for e in read_events(events_path)] == ["init_run"]
    adapter.log(handle, {"loss": 0.5})
    assert read_events(events_path)[-1]["metrics"] == {"loss": 0.5}
    adapter.log(handle, {"loss": 0.25}, step=7)
    last = read_events(events_path)[-1]
    assert (last["event"], last["metrics"], last["step"]) == ("log", {"loss": 0.25}, 7)
    adapter.log_artifact(handle, "result", artifact)
    assert read_events(events_path)[-1]["event"] == "log_artifact"
    # Another process sees all four events too, while the run is still open.
    reader = "import json, sys; print([json.loads(l)['event'] for l in open(sys.argv[1])])"
    result = run_cmd([PYTHON, "-c", reader, str(events_path)], tmp_path, check=True)
    assert result.stdout.strip() == "['init_run', 'log', 'log', 'log_artifact']"
    assert handle.extra["_journal"]._fd is not None  # the reads above did not rely on a close

    adapter.finish(handle, exit_code=0)
    events = read_events(events_path)
    assert [e["event"] for e in events] == ["init_run", "log", "log", "log_artifact", "finish"]
    assert "_journal" not in handle.extra
    stamps = [assert_utc_iso(e["timestamp"]) for e in events]
    assert stamps == sorted(stamps)
    assert "step" not in events[1]  # no step given: none recorded
    assert events[-1]["exit_code"] == 0
    assert events[-1]["preempted"] is False


def test_noop_log_artifact_records_name_path_and_size(tmp_path):
    adapter, handle = _noop_run(tmp_path)
    single = tmp_path / "out.bin"
    single.write_bytes(b"x" * 1234)
    folder = tmp_path / "checkpoints"
    (folder / "sub").mkdir(parents=True)
    (folder / "a").write_bytes(b"a" * 10)
    (folder / "sub" / "b").write_bytes(b"b" * 5)
    adapter.log_artifact(handle, "out", single)
    adapter.log_artifact(handle, "checkpoints", str(folder))
    file_event, dir_event = read_events(handle.extra["events"])[1:]
    assert file_event["name"] == "out"
    assert file_event["path"] == str(single.resolve())
    assert file_event["size_bytes"] == 1234
    assert dir_event["name"] == "checkpoints"
    assert dir_event["size_bytes"] == 15


def test_noop_finish_records_exit_code_and_preemption(tmp_path):
    adapter, failed = _noop_run(tmp_path)
    adapter.finish(failed, exit_code=3)
    assert read_events(failed.extra["events"])[-1]["exit_code"] == 3
    _, preempted = _noop_run(tmp_path)
    adapter.finish(preempted, exit_code=143, preempted=True)
    last = read_events(preempted.extra["events"])[-1]
    assert (last["exit_code"], last["preempted"]) == (143, True)


def test_noop_metrics_are_converted_as_documented(tmp_path):
    """NaN/inf stay floats, numpy-like scalars become Python numbers, bools/None/str pass."""
    adapter, handle = _noop_run(tmp_path)
    adapter.log(
        handle,
        {
            "nan": float("nan"),
            "inf": float("-inf"),
            "f32": FakeScalar(0.25),
            "i64": FakeScalar(3),
            "flag": True,
            "label": "warmup",
            "missing": None,
        },
    )
    # The journal is strict JSON: non-finite floats are written as strings and named.
    raw = Path(handle.extra["events"]).read_text().splitlines()[-1]
    event = json.loads(raw, parse_constant=lambda name: pytest.fail(f"{name} literal in {raw}"))
    assert sorted(event["nonfinite"]) == ["inf", "nan"]
    metrics = decode_metrics(event)
    assert math.isnan(metrics["nan"])
    assert metrics["inf"] == float("-inf")
    assert metrics["f32"] == 0.25 and isinstance(metrics["f32"], float)
    assert metrics["i64"] == 3 and isinstance(metrics["i64"], int)
    assert metrics["flag"] is True
    assert (metrics["label"], metrics["missing"]) == ("warmup", None)


@pytest.mark.parametrize(
    ("metrics", "named"),
    [
        ({"loss": 0.1, "model": object()}, "'model'"),
        ({"hist": FakeArray()}, "'hist'"),
        ({"nested": {"a": 1}}, "'nested'"),
        ({"values": [1, 2]}, "'values'"),
        ({"": 1.0}, "''"),
        ({3: 1.0}, "3"),
        ([("loss", 0.1)], "mapping"),
    ],
)
def test_noop_rejects_unrecordable_metrics_and_writes_nothing(tmp_path, metrics, named):
    adapter, handle = _noop_run(tmp_path)
    events_path = Path(handle.extra["events"])
    before = events_path.read_bytes()
    with pytest.raises(TrackerUsageError) as info:
        adapter.log(handle, metrics)
    assert named in str(info.value)
    assert events_path.read_bytes() == before


def test_noop_missing_artifact_is_a_usage_error(tmp_path):
    adapter, handle = _noop_run(tmp_path)
    events_path = Path(handle.extra["events"])
    before = events_path.read_bytes()
    missing = tmp_path / "nowhere" / "result.json"
    with pytest.raises(TrackerUsageError) as info:
        adapter.log_artifact(handle, "result", missing)
    assert "'result'" in str(info.value) and str(missing) in str(info.value)
    assert events_path.read_bytes() == before


def test_noop_needs_a_place_to_write(tmp_path):
    with pytest.raises(TrackerUsageError, match="log_root"):
        NoopAdapter().init_run(project="p", group="g", tags=[], config={}, notes=None, offline=True)
    assert not list(tmp_path.rglob("events.jsonl"))


def test_noop_resume_run_appends_to_the_same_log(tmp_path):
    adapter, handle = _noop_run(tmp_path)
    adapter.log(handle, {"loss": 1.0}, step=0)
    adapter.finish(handle, exit_code=0, preempted=True)
    # A handle rebuilt from plain data, as another process would from the binding.
    rebuilt = RunHandle(
        id=handle.id,
        url=handle.url,
        project=handle.project,
        group=handle.group,
        extra=json.loads(json.dumps(handle.persistent_extra())),
    )
    resumed = NoopAdapter(log_root=tmp_path / "runs").resume_run(rebuilt, attempt=2)
    assert (resumed.id, resumed.project, resumed.group) == (handle.id, "proj", "H1/E1/full")
    assert read_event_log(handle.extra["events"]).state == "running"
    adapter.log(resumed, {"loss": 0.5}, step=1)
    adapter.finish(resumed, exit_code=0)
    events = read_events(handle.extra["events"])
    assert [e["event"] for e in events] == [
        "init_run",
        "log",
        "finish",
        "resume_run",
        "log",
        "finish",
    ]
    assert events[3]["attempt"] == 2
    assert [d.name for d in (tmp_path / "runs").iterdir()] == [handle.id]
    # Without log_root or workdir the stored events path is used.
    again = NoopAdapter().resume_run(rebuilt, attempt=3)
    assert again.extra["events"] == handle.extra["events"]
    again.extra.pop("_journal").close()


# -- noop: list_runs ---------------------------------------------------------------------------
def test_noop_list_runs_filters_and_reports_state_and_last_metrics(tmp_path):
    root = tmp_path / "runs"
    adapter = NoopAdapter(log_root=root)

    def run(project: str, group: str, metrics: list[dict], end: dict | None) -> str:
        handle = adapter.init_run(
            project=project, group=group, tags=[group], config={"g": group}, notes=None,
            offline=True,
        )  # fmt: skip
        for row in metrics:
            adapter.log(handle, row)
        if end is not None:
            adapter.finish(handle, **end)
        else:
            handle.extra.pop("_journal").close()  # still running (or its process died)
        return handle.id

    done = run("A", "H1/E1/full", [{"loss": 1.0, "acc": 0.5}, {"loss": 0.5}], {"exit_code": 0})
    failed = run("A", "H1/E1/ablated", [{"loss": 2.0}], {"exit_code": 3})
    running = run("A", "H1/E2/full", [{"loss": 9.0}], None)
    preempted = run("A", "H2/E1/full", [], {"exit_code": 143, "preempted": True})
    other_project = run("B", "H1/E1/full", [{"loss": 0.0}], {"exit_code": 0})
    # Not runs: a directory without an init_run event, and one with no events file at all.
    (root / "junk").mkdir()
    (root / "junk" / "events.jsonl").write_text('{"event": "log", "metrics": {}}\n')
    (root / "empty").mkdir()

    by_id = {r.id: r for r in adapter.list_runs(project="A", group_prefix="H1/E1/")}
    assert set(by_id) == {done, failed}
    assert by_id[done].state == "finished" and by_id[done].exit_code == 0
    assert by_id[done].last_metrics == {"loss": 0.5, "acc": 0.5}
    assert by_id[done].group == "H1/E1/full"
    assert by_id[done].tags == ["H1/E1/full"] and by_id[done].config == {"g": "H1/E1/full"}
    assert by_id[done].path == str(root / done)
    assert by_id[failed].state == "failed" and by_id[failed].exit_code == 3

    everything = {r.id: r for r in adapter.list_runs(project="A")}
    assert set(everything) == {done, failed, running, preempted}
    assert everything[running].state == "running"
    assert everything[running].exit_code is None
    assert everything[running].last_metrics == {"loss": 9.0}
    assert everything[preempted].state == "preempted"
    assert [r.id for r in adapter.list_runs(project="B")] == [other_project]
    assert adapter.list_runs(project="A", group_prefix="H3") == []
    assert adapter.list_runs(project="C") == []


def test_noop_list_runs_ignores_a_torn_last_line(tmp_path):
    adapter, handle = _noop_run(tmp_path)
    adapter.log(handle, {"loss": 0.3})
    handle.extra.pop("_journal").close()
    with open(handle.extra["events"], "a", encoding="utf-8") as fh:
        fh.write('{"timestamp": "2026-01-01T00:00:00+00:00", "event": "fin')  # crash mid-line
    (record,) = adapter.list_runs(project="proj")
    assert (record.state, record.last_metrics) == ("running", {"loss": 0.3})


def test_noop_list_runs_finds_runs_in_the_signac_workspace(project, tmp_path):
    """Without log_root, runs live in <job>/tracker_log/<run>/ and list_runs scans the workspace."""
    jobs = {
        cond: create_run(
            experiment_id="E018", hypothesis_id="H012", statepoint={"condition": cond, "seed": 0}
        )
        for cond in ("full", "ablated", "bound-only")
    }
    other = create_run(experiment_id="E019", hypothesis_id="H013", statepoint={"seed": 1})
    create_run(experiment_id="E020", hypothesis_id="H013", statepoint={"seed": 2})  # unbound
    for job in [*jobs.values(), other]:
        bind_tracker(job, NoopAdapter(), project="ecg", offline=True)
    with run_lifecycle(jobs["full"]) as run:
        run.log({"loss": 0.5})
        run.log({"loss": 0.25})
    with pytest.raises(RuntimeError), run_lifecycle(jobs["ablated"]) as run:
        run.log({"loss": 4.0})
        raise RuntimeError("diverged")

    run_ids = {cond: get_binding(job)["run_id"] for cond, job in jobs.items()}
    for cond, job in jobs.items():
        assert (Path(job.path) / "tracker_log" / run_ids[cond] / "events.jsonl").is_file()

    # From the current directory (inside the project), and from anywhere with workspace=.
    listed = {r.id: r for r in NoopAdapter().list_runs(project="ecg", group_prefix="H012/E018/")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    explicit = NoopAdapter(workspace=project.workspace).list_runs(
        project="ecg", group_prefix="H012/E018/"
    )
    assert {r.id for r in explicit} == set(listed) == set(run_ids.values())
    assert listed[run_ids["full"]].state == "finished"
    assert listed[run_ids["full"]].last_metrics == {"loss": 0.25}
    assert listed[run_ids["full"]].config["job_id"] == jobs["full"].id
    assert listed[run_ids["ablated"]].state == "failed"
    assert listed[run_ids["ablated"]].exit_code == 1
    assert listed[run_ids["ablated"]].last_metrics == {"loss": 4.0}
    # Bound but never executed: the run exists and has not started.
    assert listed[run_ids["bound-only"]].state == "bound"
    assert listed[run_ids["bound-only"]].last_metrics == {}
    everything = NoopAdapter(workspace=project.workspace).list_runs(project="ecg")
    assert len(everything) == 4
    assert NoopAdapter(workspace=project.workspace).list_runs(project="nope") == []


# -- wandb: construction and the missing SDK ---------------------------------------------------
_BLOCK_WANDB = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoWandb(importlib.abc.MetaPathFinder):
        # What an environment without the [wandb] extra looks like to `import wandb`.
        def find_spec(self, name, path=None, target=None):
            if name == "wandb" or name.startswith("wandb."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoWandb())
    """
)


def test_missing_wandb_gives_the_install_hint_and_noop_still_works(tmp_path):
    script = _BLOCK_WANDB + textwrap.dedent(
        """
        import json, signac
        import aexp
        from aexp import (TrackerInitError, WandbAdapter, bind_tracker, create_run,
                          finish_run, get_adapter, run_lifecycle)

        out = {"wandb_imported_by_aexp": "wandb" in sys.modules}
        for make in (lambda: WandbAdapter(), lambda: get_adapter("wandb", entity="team")):
            try:
                make()
            except TrackerInitError as exc:
                out.setdefault("errors", []).append(str(exc))
        project = signac.init_project(sys.argv[1])
        job = create_run(experiment_id="E1", hypothesis_id="H1",
                         statepoint={"condition": "full"}, project=project)
        binding = bind_tracker(job, get_adapter("noop"), project="p")
        with run_lifecycle(job) as run:
            run.log({"loss": 0.5})
        out["binding"] = finish_run(job)
        out["wandb_imported_at_end"] = "wandb" in sys.modules
        print(json.dumps(out))
        """
    )
    result = run_cmd([PYTHON, "-c", script, str(tmp_path / "proj")], cwd=tmp_path, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["wandb_imported_by_aexp"] is False
    assert len(out["errors"]) == 2
    for message in out["errors"]:
        assert INSTALL_HINT in message and "wandb" in message
    assert out["binding"]["backend"] == "noop"
    assert out["binding"]["state"] == "finished"
    assert out["wandb_imported_at_end"] is False


def test_missing_wandb_in_process(monkeypatch):
    from aexp import WandbAdapter

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(TrackerInitError, match=re.escape(INSTALL_HINT)):
        WandbAdapter()
    with pytest.raises(TrackerInitError, match=re.escape(INSTALL_HINT)):
        get_adapter("wandb")


def test_importing_aexp_does_not_import_wandb_or_flow(tmp_path):
    script = (
        "import sys, aexp, aexp.trackers, aexp.binding, aexp.lifecycle, aexp.settings\n"
        "print(sorted(m for m in ('wandb', 'flow') if m in sys.modules))\n"
    )
    result = run_cmd([PYTHON, "-c", script], cwd=tmp_path, check=True)
    assert result.stdout.strip() == "[]"


# -- wandb: the adapter against the real client, offline ---------------------------------------
@pytest.fixture
def wandb_adapter():
    pytest.importorskip("wandb")
    from aexp import WandbAdapter

    return WandbAdapter()


def _wandb_handle(adapter, **overrides: Any) -> RunHandle:
    kwargs: dict[str, Any] = {
        "project": "proj",
        "group": "H1/E1/full",
        "tags": ["H1", "E1", "full"],
        "config": {"seed": 0, "opt.lr": 0.1, "job_id": "abc", "limina.hypothesis_id": "H1"},
        "notes": "a note",
        "offline": True,
    }
    kwargs.update(overrides)
    return adapter.init_run(**kwargs)


@pytest.mark.wandb
def test_wandb_run_url_needs_no_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from aexp import WandbAdapter

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    url = WandbAdapter(entity="team").run_url(project="proj", run_id="abc12345", offline=False)
    assert url == "https://wandb.ai/team/proj/runs/abc12345"
    assert WandbAdapter().run_url(project="proj", run_id="abc12345", offline=False) is None
    assert WandbAdapter(entity="t").run_url(project="p", run_id="abc12345", offline=True) is None
    assert list(here.iterdir()) == []  # nothing of W&B started
    assert not (tmp_path / "tmp" / "wandb").exists()


@pytest.mark.wandb
def test_wandb_init_run_log_artifact_finish_in_one_process(wandb_adapter, tmp_path):
    """The reference flow, no binding and no workflow: init_run opens the run (offline:
    mode="offline", dir=workdir) and returns the handle the other methods take."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    run = _wandb_handle(wandb_adapter, workdir=job_dir, tags=["H1", "E1", "x" * 70])
    assert re.fullmatch(r"[a-z0-9]{8}", run.id)
    assert (run.url, run.project, run.group) == (None, "proj", "H1/E1/full")
    stored = run.persistent_extra()
    assert json.loads(json.dumps(stored)) == stored
    assert stored["offline"] is True
    assert "_config" not in stored and "_run" not in stored
    assert os.environ["WANDB_ERROR_REPORTING"] == "false"  # offline sends nothing, errors too
    wandb_adapter.log(run, {"loss": 0.5, "acc": FakeScalar(0.25)}, step=0)
    wandb_adapter.log(run, {"loss": float("nan"), "epoch": FakeScalar(1)}, step=1)
    with pytest.raises(TrackerUsageError, match="'model'"):
        wandb_adapter.log(run, {"model": object()}, step=2)
    with pytest.raises(TrackerUsageError, match="does not exist"):
        wandb_adapter.log_artifact(run, "result", job_dir / "missing.json")
    result = job_dir / "result.json"
    result.write_text('{"accuracy": 0.9}')
    wandb_adapter.log_artifact(run, "result file", result)
    wandb_adapter.finish(run, exit_code=0)
    assert "_run" not in run.extra
    with pytest.raises(TrackerUsageError, match="resume it first"):
        wandb_adapter.log(run, {"loss": 1.0})

    (folder,) = offline_folders(job_dir, run.id)
    seen = read_offline_run(folder)
    assert seen["run_id"] == run.id
    assert (seen["project"], seen["group"]) == ("proj", "H1/E1/full")
    # A tag over W&B's 64 characters is shortened, deterministically.
    assert seen["tags"] == ["H1", "E1", shorten("x" * 70, 64)]
    assert len(seen["tags"][2]) == 64
    assert seen["config"] == {
        "seed": 0,
        "opt.lr": 0.1,
        "job_id": "abc",
        "limina.hypothesis_id": "H1",
    }
    steps = [step for step, _ in seen["history"]]
    assert steps == [0, 1]
    assert seen["history"][0][1]["loss"] == 0.5 and seen["history"][0][1]["acc"] == 0.25
    assert seen["history"][1][1]["epoch"] == 1
    assert "artifact" in seen["kinds"]
    assert seen["exit_code"] == 0
    # W&B's local state (artifact staging included) stays inside the job.
    assert (job_dir / "wandb" / ".data" / "artifacts").is_dir()
    assert not list((tmp_path / "home").rglob("staging"))


@pytest.mark.wandb
def test_wandb_finish_records_failure_and_preemption(wandb_adapter, tmp_path):
    first = _wandb_handle(wandb_adapter, workdir=tmp_path)
    wandb_adapter.log(first, {"loss": 1.0}, step=0)
    wandb_adapter.finish(first, exit_code=143, preempted=True)
    rebuilt = RunHandle(
        id=first.id,
        project=first.project,
        group=first.group,
        extra=json.loads(json.dumps(first.persistent_extra())),
    )
    second = wandb_adapter.resume_run(rebuilt, workdir=tmp_path, attempt=2)
    wandb_adapter.log(second, {"loss": 0.5}, step=1)
    wandb_adapter.finish(second, exit_code=1)

    folders = offline_folders(tmp_path, first.id)
    assert len(folders) == 2  # one fragment per attempt, same run id
    runs = sorted((read_offline_run(f) for f in folders), key=lambda r: r["history"][0][0])
    assert [r["run_id"] for r in runs] == [first.id, first.id]
    assert runs[0]["exit_code"] == 143 and "preempting" in runs[0]["kinds"]
    assert runs[1]["exit_code"] == 1 and "preempting" not in runs[1]["kinds"]
    assert [r["history"][0][0] for r in runs] == [0, 1]  # the explicit step axis continues


@pytest.mark.wandb
def test_wandb_refusal_is_a_tracker_init_error(wandb_adapter, tmp_path):
    def refuse(**kwargs):
        raise RuntimeError("project name invalid\nmore detail")

    wandb_adapter.wandb = SimpleNamespace(init=refuse, Settings=lambda **kwargs: None)
    with pytest.raises(TrackerInitError) as info:
        _wandb_handle(wandb_adapter, workdir=tmp_path, run_id="abcd1234")
    assert str(info.value) == "W&B refused to start run abcd1234: project name invalid"

    def invalid(**kwargs):  # what pydantic says for a setting W&B refuses
        raise ValueError(
            "1 validation error for Settings\nrun_tags\n  Value error, tag too long [type=x]"
        )

    wandb_adapter.wandb = SimpleNamespace(init=invalid, Settings=lambda **kwargs: None)
    with pytest.raises(TrackerInitError, match="run_tags; Value error, tag too long"):
        _wandb_handle(wandb_adapter, workdir=tmp_path)


@pytest.mark.wandb
def test_wandb_decoder_agrees_with_wandb_leet_inspect(wandb_adapter, tmp_path):
    run = _wandb_handle(wandb_adapter, workdir=tmp_path)
    wandb_adapter.log(run, {"loss": 0.5}, step=3)
    wandb_adapter.finish(run)
    handle = run
    (folder,) = offline_folders(tmp_path, handle.id)
    result = run_cmd([PYTHON, "-m", "wandb", "leet", "inspect", "--json", str(folder)], tmp_path)
    if result.returncode != 0:
        pytest.skip(f"wandb leet inspect unavailable: {result.stderr.strip()[:200]}")
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (run_record,) = [r["run"] for r in records if r["type"] == "run"]
    ours = read_offline_run(folder)
    assert run_record["run_id"] == ours["run_id"] == handle.id
    assert run_record["run_group"] == ours["group"]
    assert run_record["tags"] == ours["tags"]
    theirs = {k: v for k, v in run_record["config"]["update"].items() if k != "_wandb"}
    assert theirs == ours["config"]
    assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]


# -- wandb: list_runs (the cloud API, mocked) --------------------------------------------------
class _FakeApi:
    calls: list[dict[str, Any]] = []

    def __init__(self, runs: list[Any], fail: Exception | None = None) -> None:
        self._runs, self._fail = runs, fail

    def __call__(self, **kwargs: Any) -> _FakeApi:
        self.calls.append({"init": kwargs})
        if self._fail:
            raise self._fail
        return self

    def runs(self, path: str, filters: dict[str, Any]) -> list[Any]:
        self.calls.append({"path": path, "filters": filters})
        pattern = re.compile(filters["group"]["$regex"])
        return [r for r in self._runs if pattern.search(r.group or "")]


def _api_run(run_id: str, group: str, state: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=run_id,
        group=group,
        state=state,
        url=f"https://wandb.ai/team/proj/runs/{run_id}",
        tags=["t"],
        config={"job_id": "j" + run_id},
        summary={"loss": 0.1, "_step": 9, "_runtime": 3.0},
    )


@pytest.mark.wandb
def test_wandb_list_runs_queries_the_api_with_a_group_regex(tmp_path):
    pytest.importorskip("wandb")
    from aexp import WandbAdapter

    fake = _FakeApi(
        [
            _api_run("r1", "H1/E1/full", "finished"),
            _api_run("r2", "H1/E1/ablated", "crashed"),
            _api_run("r3", "H1/E1.5/full", "running"),  # "." must not match any character
            _api_run("r4", "xH1/E1/full", "preempting"),
            _api_run("r5", "H1/E1/x", "weird"),
        ]
    )
    fake.calls = []
    adapter = WandbAdapter(entity="team")
    adapter.wandb = SimpleNamespace(Api=fake)
    records = adapter.list_runs(project="proj", group_prefix="H1/E1/")
    assert fake.calls[1]["path"] == "team/proj"
    assert [(r.id, r.state) for r in records] == [
        ("r1", "finished"),
        ("r2", "failed"),
        ("r5", "unknown"),
    ]
    assert records[0].last_metrics == {"loss": 0.1}  # W&B's "_" bookkeeping keys dropped
    assert records[0].config == {"job_id": "jr1"} and records[0].tags == ["t"]
    assert records[0].project == "proj" and records[0].url.endswith("/r1")

    no_entity = WandbAdapter()
    no_entity.wandb = SimpleNamespace(Api=fake)
    assert {r.id for r in no_entity.list_runs(project="proj")} == {"r1", "r2", "r3", "r4", "r5"}
    assert fake.calls[-1]["path"] == "proj"

    broken = WandbAdapter()
    broken.wandb = SimpleNamespace(Api=_FakeApi([], fail=ValueError("no API key configured")))
    with pytest.raises(TrackerInitError, match="cannot list W&B runs of 'proj': no API key"):
        broken.list_runs(project="proj")


# -- re-attach from another process ------------------------------------------------------------
_ATTEMPT = textwrap.dedent(
    """
    import json, sys
    from aexp import find_job, get_binding, open_project
    from aexp.handles import adapter_for, handle_for

    job = find_job(open_project(), sys.argv[1])
    binding = get_binding(job)
    adapter = adapter_for(binding)
    handle = adapter.resume_run(handle_for(job, binding), workdir=job.path,
                                attempt=int(sys.argv[2]))
    adapter.log(handle, {"attempt": int(sys.argv[2])}, step=int(sys.argv[3]))
    adapter.finish(handle, exit_code=0)
    print(json.dumps({"id": handle.id, "wandb": "wandb" in sys.modules}))
    """
)


def _attempt_in_subprocess(job, attempt: int, step: int) -> dict[str, Any]:
    result = run_cmd(
        [PYTHON, "-c", _ATTEMPT, job.id, str(attempt), str(step)], cwd=Path.cwd(), check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.wandb
def test_wandb_reattach_from_other_processes_keeps_the_run_id(project, wandb_adapter):
    job = create_run(experiment_id="E018", hypothesis_id="H012", statepoint={"condition": "full"})
    binding = bind_tracker(job, wandb_adapter, project="ecg", offline=True)
    assert not Path(job.path, "wandb").exists()  # binding alone creates no W&B folder

    first = _attempt_in_subprocess(job, attempt=1, step=0)
    assert first == {"id": binding["run_id"], "wandb": True}
    assert len(offline_folders(job.path, binding["run_id"])) == 1
    second = _attempt_in_subprocess(job, attempt=2, step=5)
    assert second["id"] == binding["run_id"]

    folders = offline_folders(job.path, binding["run_id"])
    assert len(folders) == 2  # one per attempt
    runs = [read_offline_run(f) for f in folders]
    assert {r["run_id"] for r in runs} == {binding["run_id"]}
    assert {r["group"] for r in runs} == {"H012/E018/full"}
    assert sorted(r["history"][0][0] for r in runs) == [0, 5]
    assert all(r["config"]["job_id"] == job.id for r in runs)
    assert get_binding(job)["run_id"] == binding["run_id"]


def test_noop_reattach_from_another_process_keeps_the_run_id(project):
    job = create_run(experiment_id="E018", hypothesis_id="H012", statepoint={"condition": "full"})
    binding = bind_tracker(job, NoopAdapter(), project="ecg", offline=True)
    out = _attempt_in_subprocess(job, attempt=1, step=4)
    assert out == {"id": binding["run_id"], "wandb": False}
    assert [d.name for d in Path(job.path, "tracker_log").iterdir()] == [binding["run_id"]]
    events = read_events(Path(job.path, "tracker_log", binding["run_id"], "events.jsonl"))
    assert [e["event"] for e in events] == ["init_run", "resume_run", "log", "finish"]
    assert events[1]["attempt"] == 1
    assert (events[2]["metrics"], events[2]["step"]) == ({"attempt": 1}, 4)


# -- secrets -----------------------------------------------------------------------------------
@pytest.mark.wandb
def test_no_api_key_is_written_anywhere(tmp_path):
    pytest.importorskip("wandb")
    key = secrets.token_hex(20)  # a fake key of W&B's length (40 characters)
    env = {**os.environ, "WANDB_API_KEY": key}
    script = textwrap.dedent(
        """
        import signac, sys
        from aexp import WandbAdapter, bind_tracker, create_run, finish_run, run_lifecycle

        project = signac.init_project(sys.argv[1])
        job = create_run(experiment_id="E018", hypothesis_id="H012",
                         statepoint={"condition": "full", "seed": 0}, project=project)
        bind_tracker(job, WandbAdapter(), project="ecg-inquiry-eval", offline=True)
        with run_lifecycle(job) as run:
            run.log({"loss": 0.1})
            open(job.fn("result.json"), "w").write("{}")
            run.log_artifact("result", "result.json")
        finish_run(job)
        print(job.path)
        """
    )
    result = run_cmd([PYTHON, "-c", script, str(tmp_path / "proj")], tmp_path, env=env, check=True)
    job_path = Path(result.stdout.strip().splitlines()[-1])
    assert len(list((job_path / "wandb").glob("offline-run-*"))) == 1
    scanned = 0
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert key.encode() not in path.read_bytes(), f"API key written to {path}"
            scanned += 1
    assert scanned > 10  # the run's files were there to scan
