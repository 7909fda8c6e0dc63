"""Baseline of benchmark 7: the template's experiment in a bare FlowProject, without tracking.

One operation runs experiment.py's `experiment` for each job; its `tracker` argument is the least
an untracked script needs: `log` does nothing, a checkpoint is a plain JSON file. Nothing of aexp
is imported: no binding, no job-document bookkeeping, no heartbeat, no event log.

With BENCH_ATOMIC_CHECKPOINTS=1 a checkpoint is written the way aexp's `Tracker.checkpoint`
writes it (temporary file, atomic rename): the informational variant that separates the
cost of atomic checkpoints from the cost of tracking.
"""

import json
import os

from flow import FlowProject

from experiment import experiment

ATOMIC = os.environ.get("BENCH_ATOMIC_CHECKPOINTS") == "1"


class Untracked:
    """Stands in for aexp's Tracker: metrics are dropped, checkpoints are plain files."""

    def __init__(self, job):
        self.job = job

    def log(self, metrics, *, step=None):
        pass

    def log_artifact(self, name, path):
        pass

    def checkpoint(self, state):
        path = self.job.fn("checkpoint.json")
        if not ATOMIC:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump({"state": state}, fh)
            return
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"state": state}, fh)
        os.replace(tmp, path)

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
