"""Baseline of benchmark 7: the template's experiment in a bare FlowProject, without tracking.

One operation runs experiment.py's `experiment` for each job; its `tracker` argument is the least
an untracked script needs: `log` does nothing, a checkpoint is a plain JSON file written with
`json.dump` (what an experiment without aexp would do). Nothing of aexp is imported: no binding,
no job-document bookkeeping, no heartbeat, no event log.

With BENCH_AEXP_CHECKPOINTS=1 a checkpoint is written by aexp's own `write_checkpoint` (in place,
two slots): the informational variant that leaves tracking as the only difference.
"""

import json
import os

from flow import FlowProject

from experiment import experiment

AEXP_CHECKPOINTS = os.environ.get("BENCH_AEXP_CHECKPOINTS") == "1"


class Untracked:
    """Stands in for aexp's Tracker: metrics are dropped, checkpoints are plain files."""

    def __init__(self, job):
        self.job = job
        self.seq = -1  # checkpoints written (with BENCH_AEXP_CHECKPOINTS)

    def log(self, metrics, *, step=None):
        pass

    def log_artifact(self, name, path):
        pass

    def checkpoint(self, state):
        if AEXP_CHECKPOINTS:
            from aexp.checkpoint import write_checkpoint

            self.seq += 1
            write_checkpoint(self.job.path, self.seq, 0, state)
            return
        with open(self.job.fn("checkpoint.json"), "w", encoding="utf-8") as fh:
            json.dump({"state": state}, fh)

    def load_checkpoint(self):
        try:
            with open(self.job.fn("checkpoint.json"), encoding="utf-8") as fh:
                return json.load(fh)["state"]
        except FileNotFoundError:
            return None


class Baseline(FlowProject):
    pass


@Baseline.post.isfile("result.json")
@Baseline.operation(directives={"np": 1, "walltime": 1})
def execute(job):
    experiment(job, Untracked(job))


if __name__ == "__main__":
    Baseline().main()
