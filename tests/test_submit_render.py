"""The batch script `python project.py submit` renders (templates/script.sh), without SLURM.

flow's TestEnvironment prints the script instead of submitting it; the template then extends
flow's slurm.sh exactly as on a cluster. Two tests run the rendered script with plain bash to
check that a signal sent to the batch shell reaches the Python process and is recorded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc

import aexp
from aexp.checkpoint import read_checkpoint

TEST_ENV = "TestEnvironment"


def make_jobs(n: int = 1, **extra: object) -> list:
    return [
        aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={"condition": "full", "seed": seed, "epochs": 4, **extra},
        )
        for seed in range(n)
    ]


def submit(root: Path, *args: str, env: dict | None = None, check: bool = True):
    env = {**(env or os.environ), "SIGNAC_FLOW_ENVIRONMENT": TEST_ENV}
    return run_cmd(
        [PYTHON, "project.py", "submit", "--pretend", *args], cwd=root, env=env, check=check
    )


def scripts(result) -> list[str]:
    """The rendered scripts, in submission order (each starts with the shebang)."""
    return ["#!/bin/bash\n" + s for s in result.stdout.split("#!/bin/bash\n")[1:]]


def submitted_names(result) -> list[str]:
    return re.findall(r"Submitting cluster job '([^']+)'", result.stderr)


def sbatch_lines(script: str) -> list[str]:
    """The #SBATCH lines; sbatch stops reading them at the first command, so they must lead."""
    header = []
    for line in script.splitlines()[1:]:
        if line.startswith("#SBATCH "):
            header.append(line)
        elif line.strip() and not line.startswith("#"):
            break
    assert header == [line for line in script.splitlines() if line.startswith("#SBATCH")], (
        "every #SBATCH line must come before the first command"
    )
    return header


def test_the_script_asks_for_the_warning_signal_requeue_and_an_existing_log_dir(
    template: Path,
) -> None:
    (job,) = make_jobs()
    result = submit(template)
    (script,) = scripts(result)
    (name,) = submitted_names(result)
    header = sbatch_lines(script)
    assert header == [
        f'#SBATCH --job-name="{name}"',  # flow's own, the only one: flow tracks jobs by it
        "#SBATCH -t 01:00:00",
        "#SBATCH --ntasks=1",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f'#SBATCH --output="{template}/logs/slurm-%j.out"',
    ]
    assert job.id in name
    assert (template / "logs").is_dir(), "SLURM drops a job whose output directory is missing"
    assert not re.search(r"--gpus|--gres|--partition|--account|-A |-p ", "\n".join(header))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_the_script_runs_offline_forwards_signals_and_requeues(template: Path) -> None:
    (job,) = make_jobs()
    (script,) = scripts(submit(template))
    for line in (
        "export AEXP_OFFLINE=true",
        "export WANDB_MODE=offline",
        "export WANDB_ERROR_REPORTING=false",
        "export WANDB__DISABLE_STATS=true",
        "trap 'aexp_forward USR1' USR1",
        "trap 'aexp_forward TERM' TERM",
        f"{PYTHON} {template}/project.py run -o run_job -j {job.id} &",
        'aexp_pids="$aexp_pids $!"',
        "aexp_wait",
        "aexp_preempt_code=$((128 + $(kill -l USR1)))",
        '        scontrol requeue "$SLURM_JOB_ID" ||',
    ):
        assert line in script.splitlines(), line
    assert 'kill -s "$1" "$aexp_pid"' in script
    assert re.search(r"\*TERM\*\) ;;", script), "scancel's SIGTERM is never requeued"
    assert script.index(f"cd {template}") < script.index("export AEXP_OFFLINE=true")


def test_settings_from_signac_rc(template: Path) -> None:
    make_jobs()
    set_rc(template, "slurm", "partition", "gpu-short")
    set_rc(template, "slurm", "account", "proj42")
    set_rc(template, "slurm", "warning_signal", "SIGUSR2")
    set_rc(template, "slurm", "warning_seconds", "300")
    set_rc(template, "slurm", "requeue", "false")
    (script,) = scripts(submit(template))
    header = sbatch_lines(script)
    assert "#SBATCH --partition=gpu-short" in header
    assert "#SBATCH --account=proj42" in header
    assert "#SBATCH --signal=B:USR2@300" in header
    assert "#SBATCH --requeue" not in header and "#SBATCH --open-mode=append" not in header
    assert "trap 'aexp_forward USR2' USR2" in script and "trap 'aexp_forward TERM' TERM" in script
    assert "scontrol requeue" not in script
    assert "requeue is off" in script


def test_a_bad_warning_signal_is_refused_with_a_clear_message(template: Path) -> None:
    make_jobs()
    set_rc(template, "slurm", "warning_signal", "HUP")
    result = submit(template, check=False)
    assert result.returncode != 0
    assert "[slurm] warning_signal in " in result.stderr
    assert "must be one of TERM, USR1, USR2, not 'HUP'" in result.stderr
    assert "Traceback" not in result.stderr


def test_resource_directives_render_including_a_gpu_line(template: Path) -> None:
    make_jobs()
    project_py = template / "project.py"
    text = project_py.read_text()
    old = 'directives={"np": 1, "walltime": 1}'
    assert old in text
    project_py.write_text(
        text.replace(old, 'directives={"np": 4, "ngpu": 2, "memory": 8, "walltime": 0.5}')
    )
    # flow's DefaultSlurmEnvironment (and TestEnvironment) knows no GPU partition: ngpu needs
    # `submit --force`.
    refused = submit(template, check=False)
    assert refused.returncode != 0 and "Cannot request GPU's on nonGPU partition" in refused.stderr
    result = submit(template, "--force")
    (script,) = scripts(result)
    header = sbatch_lines(script)
    for line in ("#SBATCH --mem=8G", "#SBATCH -t 00:30:00", "#SBATCH --ntasks=4"):
        assert line in header
    assert "#SBATCH --gpus=2" in header
    assert "were not used by the template" not in result.stderr


def test_a_parallel_bundle_starts_every_operation_before_waiting(template: Path) -> None:
    jobs = make_jobs(3)
    (script,) = scripts(submit(template, "--bundle", "3", "--parallel"))
    lines = script.splitlines()
    starts = [i for i, line in enumerate(lines) if line.endswith(" &") and "run -o run_job" in line]
    waits = [i for i, line in enumerate(lines) if line == "aexp_wait"]
    assert len(starts) == 3 and all(lines[i + 1] == 'aexp_pids="$aexp_pids $!"' for i in starts)
    assert len(waits) == 1 and waits[0] > starts[-1], "one wait, for all of them"
    assert "#SBATCH --ntasks=3" in sbatch_lines(script)
    assert {job.id for job in jobs} == {re.search(r"-j (\w+) &", lines[i])[1] for i in starts}

    (serial,) = scripts(submit(template, "--bundle", "3"))
    lines = serial.splitlines()
    starts = [i for i, line in enumerate(lines) if line.endswith(" &") and "run -o run_job" in line]
    assert all("aexp_wait" in lines[i + 3] for i in starts), "one operation at a time"
    assert "#SBATCH --ntasks=1" in sbatch_lines(serial)


def test_no_secret_reaches_the_script(template: Path) -> None:
    make_jobs()
    secret = "f" * 40
    env = {**os.environ, "WANDB_API_KEY": secret, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    result = submit(template, env=env)
    for text in (result.stdout, result.stderr):
        assert secret not in text and "WANDB_API_KEY" not in text
    assert "WANDB_BASE_URL" not in result.stdout


def test_flags_after_double_dash_go_to_sbatch(template: Path, tmp_path: Path) -> None:
    """Under flow's SLURM environment, with a stub squeue (flow polls it before submitting)."""
    make_jobs()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("squeue", "sbatch"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SIGNAC_FLOW_ENVIRONMENT": "DefaultSlurmEnvironment",
    }
    result = run_cmd(
        [PYTHON, "project.py", "submit", "--pretend", "--", "--partition=debug", "--time=5"],
        cwd=template,
        env=env,
        check=True,
    )
    assert "# Submit command: sbatch --partition=debug --time=5" in result.stdout
    (script,) = scripts(result)
    assert "#SBATCH --signal=B:USR1@120" in sbatch_lines(script)


# -- the rendered script, run by bash on this machine -------------------------------------------
def rendered_script(root: Path) -> tuple[object, Path]:
    set_rc(root, "tracker", "backend", "noop")
    (job,) = make_jobs(epochs=40, epoch_seconds=0.25)
    (script,) = scripts(submit(root))
    path = root / "batch.sh"
    path.write_text(script)
    return job, path


def start_script(path: Path, root: Path, env: dict | None = None) -> subprocess.Popen:
    env = {**(env or os.environ), "AEXP_HEARTBEAT": "0.2"}
    return subprocess.Popen(
        ["bash", str(path)], cwd=root, env=env, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for_steps(job, proc: subprocess.Popen, steps: int = 2) -> None:
    deadline = time.monotonic() + 60
    doc = Path(job.path, "signac_job_document.json")
    while time.monotonic() < deadline:
        if doc.exists():
            tracker = json.loads(doc.read_text()).get("tracker", {})
            if tracker.get("state") == "running" and tracker.get("last_step", -1) >= steps:
                return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.1)
    pytest.fail("the operation never got going")


def binding(job) -> dict:
    return json.loads(Path(job.path, "signac_job_document.json").read_text())["tracker"]


def test_the_warning_signal_to_the_batch_shell_reaches_python(template: Path) -> None:
    job, path = rendered_script(template)
    proc = start_script(path, template)
    try:
        wait_for_steps(job, proc)
        proc.send_signal(signal.SIGUSR1)  # the batch shell only, as --signal=B:USR1 does
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGUSR1, out
    assert "SIGUSR1 received; forwarding it to:" in out
    assert f"exited with {128 + signal.SIGUSR1}" in out
    assert "requeueing" not in out, "outside SLURM there is nothing to requeue"
    tracker = binding(job)
    assert tracker["state"] == "preempted" and tracker["exit_code"] == 128 + signal.SIGUSR1
    assert tracker["closed"] is True
    checkpoint = read_checkpoint(job.path)
    assert checkpoint.state["epoch"] == tracker["last_step"] + 1, "stopped at a checkpoint"


# Loaded by the operation's Python (PYTHONPATH): while the attempt's end is being written
# (inside the document update that records it), the process gets one more SIGTERM, as a third
# copy from scancel or a user's second Ctrl-C would arrive. A marker file proves it was sent.
_SIGNAL_WHILE_RECORDING = """
import os, signal
import aexp.attempt as attempts

_update_doc = attempts.update_doc


def update_doc(job, change, **options):
    def change_and_signal(doc):
        updates = change(doc)
        if updates and updates.get("status") == "preempted":
            open(os.path.join(job.path, "signalled-while-recording"), "w").close()
            os.kill(os.getpid(), signal.SIGTERM)
        return updates

    return _update_doc(job, change_and_signal, **options)


attempts.update_doc = update_doc
"""


def test_a_signal_while_the_attempt_is_recorded_does_not_cut_the_record_short(
    template: Path, tmp_path: Path
) -> None:
    # scancel signals the batch shell and Python (the shell forwards its own copy); one more
    # arrives from inside the update that records the preemption: it must be ignored.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SIGNAL_WHILE_RECORDING)
    path_var = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    job, path = rendered_script(template)
    proc = start_script(path, template, env={**os.environ, "PYTHONPATH": path_var})
    try:
        wait_for_steps(job, proc)
        os.killpg(proc.pid, signal.SIGTERM)  # the shell and python both, plus the forwarded copy
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert Path(job.path, "signalled-while-recording").exists(), "the hook never fired"
    assert proc.returncode == 128 + signal.SIGTERM, out
    tracker = binding(job)
    assert tracker["state"] == "preempted" and tracker["exit_code"] == 143, out
    assert tracker["closed"] is True, "the signal during the record did not cut it short"
    doc = json.loads(Path(job.path, "signac_job_document.json").read_text())
    assert doc["status"] == "preempted" and doc["ended_at"]


def test_an_unreachable_slurm_controller_gives_sentences_not_tracebacks(
    template: Path, tmp_path: Path
) -> None:
    # SLURM's client tools installed, its controller down: squeue and sbatch fail as they do.
    bin_dir = tmp_path / "fake-slurm"
    bin_dir.mkdir()
    for tool, message in {
        "squeue": "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
        "sbatch": "sbatch: error: Batch job submission failed: Unable to contact slurm "
        "controller (connect failure)",
    }.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SIGNAC_FLOW_ENVIRONMENT": "DefaultSlurmEnvironment",
    }
    (job,) = make_jobs()

    status = run_cmd([PYTHON, "project.py", "status", "-d"], cwd=template, env=env)
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert "the scheduler did not answer, so queue states are not shown" in status.stderr
    assert job.id[:6] in status.stdout, "the jobs' own states are still shown"

    submitted = run_cmd([PYTHON, "project.py", "submit"], cwd=template, env=env)
    assert submitted.returncode == 1
    assert "Traceback" not in submitted.stderr
    assert submitted.stderr.strip().splitlines()[-1] == (
        f"error: sbatch refused run_job({job.id}) (Unable to contact slurm controller (connect "
        "failure)); nothing was submitted; 1 eligible job was not sent: the next submit sends "
        "them."
    )


# -- the working window before the warning signal (issue 12) -------------------------------------
@pytest.mark.parametrize(
    ("warning", "flags", "refused"),
    [
        ("120", ["--", "--time=0:01:12"], "has a walltime of 0:01:12 (72 s)"),  # the case
        ("120", ["--", "--time=1"], "has a walltime of 0:01:00 (60 s)"),
        ("120", ["--", "-t", "2"], "has a walltime of 0:02:00 (120 s)"),
        ("3600", [], "has a walltime of 1:00:00 (3600 s)"),  # execute's directive: 1 hour
        ("120", ["--", "--time=3"], None),  # exactly 60 s to work
        ("3540", [], None),
        ("120", ["--", "--time=1-0"], None),  # one day
    ],
    ids=["72s", "1min", "-t 2", "directive", "3min", "59min warning", "1 day"],
)
def test_submit_refuses_a_walltime_that_leaves_no_working_window(
    template: Path, warning: str, flags: list[str], refused: str | None
) -> None:
    set_rc(template, "slurm", "warning_seconds", warning)
    (job,) = make_jobs()
    result = submit(template, *flags, check=False)
    assert "Traceback" not in result.stderr
    if refused is None:
        assert result.returncode == 0, result.stderr
        assert len(scripts(result)) == 1
        return
    assert result.returncode == 1
    said = result.stderr.splitlines()
    (line,) = [x for x in said if x.strip() and x != "Querying scheduler..."]  # flow's own
    assert line.startswith(f"error: submit refused: run_job({job.id}) {refused}, but SIGUSR1 ")
    assert f"comes {warning} s before the end ([slurm] warning_seconds)" in line
    assert line.endswith("nothing was submitted.")
    assert result.stdout == "" and not submitted_names(result)


def test_slurm_time_strings_are_read_as_sbatch_reads_them() -> None:
    from aexp.workflow.walltime import parse_slurm_time, time_flag

    cases = {"5": 300, "5:30": 330, "1:00:00": 3600, "2-0": 172800, "1-2": 93600,
             "1-2:30": 95400, "1-0:0:10": 86410, "UNLIMITED": None, "soon": None}  # fmt: skip
    assert {text: parse_slurm_time(text) for text in cases} == cases
    assert time_flag(["--qos=long", "--time=2", "-t", "5"]) == 300  # the last one wins
    assert time_flag(["-t3"]) == 180 and time_flag(["--partition=x"]) is None
