"""Baseline of benchmark 2: the smallest project.py a user of bare signac-flow writes.

One operation that runs the same experiment.py, so both sides import the user's experiment and
signac-flow; nothing of aexp is imported. Benchmark 2 times `python <this file> --help`.
"""

from flow import FlowProject

from experiment import experiment


class Baseline(FlowProject):
    pass


@Baseline.post.isfile("result.json")
@Baseline.operation
def execute(job):
    experiment(job, None)


if __name__ == "__main__":
    Baseline().main()
