"""Baseline of benchmark 1: a bare FlowProject with the template's operation graph.

The same four operations, the same `run_job` group and as many labels as project.py, but every
condition and label is a `job.isfile` check of an empty marker file (the cheap condition signac's
documentation recommends) and nothing of aexp is imported. bench/generate.py writes the markers
that match each job's state, so that each operation is eligible for the same jobs as in
project.py (benchmark 1 asserts it): a damaged binding is bound to nothing, a running job with a
fresh heartbeat (`alive`) is not executed again, and an unbound job is eligible for `execute` as
well as `init_tracker` (project.py's `execute` binds a job it runs first).
"""

import os

from flow import FlowProject


class Baseline(FlowProject):
    pass


run_job = Baseline.make_group("run_job")


@Baseline.label
def backend(job):
    return "wandb-offline" if job.isfile("bound") else None


@Baseline.label
def state(job):
    return "finished" if job.isfile("finished") else None


@Baseline.label
def stale(job):
    return job.isfile("stale")


@Baseline.label
def unsynced(job):
    return job.isfile("unsynced")


@Baseline.label
def corrupt(job):
    return job.isfile("corrupt")


@run_job
@Baseline.pre(lambda job: not job.isfile("bound") and not job.isfile("corrupt"))
@Baseline.post.isfile("bound")
@Baseline.operation
def init_tracker(job):
    pass


@run_job
@Baseline.pre(
    lambda job: not job.isfile("corrupt") and not job.isfile("ended") and not job.isfile("alive")
)
@Baseline.post.isfile("ended")
@Baseline.operation(directives={"np": 1, "walltime": 1})
def execute(job):
    pass


@run_job
@Baseline.pre.isfile("ended")
@Baseline.post.isfile("finished")
@Baseline.operation
def finish(job):
    pass


def can_sync_here():
    return "SLURM_JOB_ID" not in os.environ and bool(os.environ.get("WANDB_API_KEY"))


@Baseline.pre.isfile("unsynced")
@Baseline.pre(lambda job: can_sync_here())
@Baseline.post.isfile("synced")
@Baseline.operation
def sync_offline(job):
    pass


if __name__ == "__main__":
    Baseline().main()
