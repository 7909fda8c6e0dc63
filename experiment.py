"""The experiment: replace `experiment()` with your own and keep its signature.

`experiment(job, tracker)` runs one execution attempt of one point of the sweep. `job.sp` holds
the parameters (the state point); `tracker` logs to the job's run:

    tracker.log({"loss": 0.1}, step=epoch)  one row of metrics at step `epoch`
    tracker.checkpoint(state)               save resumable state; also where a preemption stops you
    tracker.load_checkpoint()               the state saved by the last attempt, or None
    tracker.log_artifact("name", "file")    attach a file of the job's workspace to the run

An attempt can be preempted (SLURM time limit, scancel, Ctrl-C) and started again later: the next
attempt gets the same run and the step axis continues. Resume from `load_checkpoint()` and the
work done before the last checkpoint is not repeated. Log with `step=` your own counter (the
epoch): an epoch done again after a kill then adds no second row in any tracker (without it,
the re-done epoch would be logged once more, at a new step). Raise an exception to fail the run.

The example fits a logistic regression with SGD on synthetic data drawn from the seed (no
downloads, no dependencies). State point keys it understands:

    condition       "full" uses every feature, "ablated" drops the informative one
    seed            data and initialisation seed
    epochs          number of passes over the data (default 20)
    lr              learning rate (default 0.5)
    epoch_seconds   sleep per epoch, to make a run long enough to preempt (default 0)
    fail_at_epoch   raise at this epoch, to see what a failed run looks like (default: never)
    hang_at_epoch   stop making progress at this epoch in the first attempt, to see what a
                    stalled job looks like (`status` labels it `stalled`; docs/workflow.md)
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from typing import Any

N_SAMPLES = 512
N_FEATURES = 4


def make_data(seed: int, ablated: bool) -> list[tuple[list[float], int]]:
    """Samples whose label depends on feature 0 (zeroed out when `ablated`)."""
    rng = random.Random(seed)
    data = []
    for _ in range(N_SAMPLES):
        x = [rng.gauss(0.0, 1.0) for _ in range(N_FEATURES)]
        y = int(x[0] + 0.3 * x[1] + rng.gauss(0.0, 0.3) > 0)
        if ablated:
            x[0] = 0.0
        data.append((x, y))
    return data


def _predict(w: list[float], b: float, x: list[float]) -> float:
    z = b + sum(wi * xi for wi, xi in zip(w, x, strict=True))
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def evaluate(w: list[float], b: float, data: list[tuple[list[float], int]]) -> dict[str, float]:
    """Mean log loss and accuracy of the model (w, b) on `data`."""
    probs = [(_predict(w, b, x), y) for x, y in data]
    loss = -sum(math.log(max(p if y else 1 - p, 1e-12)) for p, y in probs) / len(data)
    accuracy = sum((p > 0.5) == bool(y) for p, y in probs) / len(data)
    return {"loss": loss, "accuracy": accuracy}


def experiment(job: Any, tracker: Any) -> None:
    """Train, logging loss and accuracy per epoch; writes result.json into the job workspace."""
    sp = job.sp
    epochs = int(sp.get("epochs", 20))
    lr = float(sp.get("lr", 0.5))
    data = make_data(int(sp.get("seed", 0)), ablated=sp.get("condition") == "ablated")

    state = tracker.load_checkpoint() or {"epoch": 0, "w": [0.0] * N_FEATURES, "b": 0.0}
    w, b = state["w"], state["b"]
    for epoch in range(state["epoch"], epochs):
        if sp.get("fail_at_epoch") == epoch:
            raise RuntimeError(f"injected failure at epoch {epoch}")
        if sp.get("hang_at_epoch") == epoch and tracker.attempt == 1:
            threading.Event().wait()  # a deadlock: alive, heartbeat beating, nothing logged
        # Every random draw is seeded from (seed, epoch), not from a generator carried across
        # epochs: a resumed attempt draws what an uninterrupted one would (or checkpoint the
        # generator's state with the model).
        order = list(range(len(data)))
        random.Random(f"{sp.get('seed', 0)}-shuffle-{epoch}").shuffle(order)
        for i in order:
            x, y = data[i]
            grad = _predict(w, b, x) - y
            w = [wi - lr * grad * xi / 8 for wi, xi in zip(w, x, strict=True)]
            b -= lr * grad / 8
        tracker.log({"epoch": epoch, **evaluate(w, b, data)}, step=epoch)
        time.sleep(float(sp.get("epoch_seconds", 0)))
        tracker.checkpoint({"epoch": epoch + 1, "w": w, "b": b})

    with open(job.fn("result.json"), "w", encoding="utf-8") as fh:
        json.dump({**evaluate(w, b, data), "epochs": epochs}, fh)
