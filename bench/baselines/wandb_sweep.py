"""Baseline of benchmark 10: a bare FlowProject whose one operation uses wandb by hand.

What a user writes instead of the template: for each job, `wandb.init(mode="offline")` into the
job's directory, the experiment's rows logged with `run.log`, its result file attached as an
artifact (as the template attaches `result.json`), `run.finish()`. The settings are the ones aexp
gives its own runs (silent, no console capture, no system metrics, no code saving), so the two
sides differ only in what aexp changes about `wandb.init`; W&B's defaults for the rest (the
installed packages' list and the git state, collected by every `wandb.init`) stay as W&B has them.
Nothing of aexp is imported. The experiment is the project's experiment.py (the same function the
template runs).

With BENCH_WANDB_LEAN=1 the runs also switch off what aexp collects once per process instead
(`x_save_requirements=False`, `disable_git=True`): the informational variant that leaves aexp's
own work as the only difference (its runs then lack the packages' list and the git state).
"""

import os

import wandb
from flow import FlowProject

from experiment import experiment

PROJECT = "aexp-demo"
LEAN = {"x_save_requirements": False, "disable_git": True}
SETTINGS = {"silent": True, "console": "off", "x_disable_stats": True, "save_code": False}
if os.environ.get("BENCH_WANDB_LEAN") == "1":
    SETTINGS.update(LEAN)


class HandWritten:
    """The `tracker` the experiment gets: `log` is `run.log` of the job's W&B run."""

    def __init__(self, run):
        self.run = run
        self.step = -1

    def log(self, metrics, *, step=None):
        self.step = self.step + 1 if step is None else step
        self.run.log(metrics, step=self.step)

    def checkpoint(self, state):
        pass

    def load_checkpoint(self):
        return None


class Baseline(FlowProject):
    pass


@Baseline.post.isfile("result.json")
@Baseline.operation(directives={"np": 1, "walltime": 1})
def execute(job):
    sp = job.sp()
    run = wandb.init(
        project=PROJECT,
        group=f"{sp['hypothesis_id']}/{sp['experiment_id']}/{sp['condition']}",
        tags=[sp["hypothesis_id"], sp["experiment_id"], sp["condition"]],
        config={**sp, "job_id": job.id},
        dir=job.path,
        mode="offline",
        settings=wandb.Settings(**SETTINGS),
    )
    experiment(job, HandWritten(run))
    artifact = wandb.Artifact("result.json", type="result")
    artifact.add_file(job.fn("result.json"))
    run.log_artifact(artifact)
    run.finish()


if __name__ == "__main__":
    Baseline().main()
