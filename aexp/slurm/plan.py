"""Which submissions a `submit` pass sends now, in what order, and which wait: a pure function.

    plan = plan_submission(ops, bundle=1, canary=1, free=10, over_limit="wait")
    plan.send      # (Bundle(ops, canary=True), Bundle(...), ...): one SLURM job each, in order
    plan.waiting   # the operations held back for the next `submit`

The rules, in order:

1. The canary: the first `canary` operations (flow's order of eligible jobs) go first, in
   bundles of their own (never mixed with the rest), so that the rest can depend on exactly
   them (`--dependency=afterok:<their SLURM ids>`).
2. The rest follow in bundles of `bundle` operations (flow's `--bundle`; 1: one SLURM job per
   operation).
3. A limit (`free`: SLURM jobs that may still be queued, None: no limit): with `over_limit =
   "wait"` only the first `free` bundles are sent and the operations of the others wait for the
   next `submit`; with `"bundle"` the rest is packed into as many bundles as the limit leaves
   after the canary (larger bundles, run one operation after another: each SLURM job then needs
   the walltime of all of them). Canary bundles count against the limit first; a limit that
   leaves no room for the canary sends nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

OVER_LIMIT_CHOICES = ("wait", "bundle")


@dataclass(frozen=True)
class Bundle:
    """One SLURM job: the operations it runs, and whether it is (part of) the canary."""

    ops: tuple[Any, ...]
    canary: bool = False


@dataclass(frozen=True)
class Plan:
    """What a pass sends (`send`, in order) and holds back (`waiting`); `bundle_size`: the
    size the rest was bundled to (larger than asked when `over_limit = "bundle"` packed it)."""

    send: tuple[Bundle, ...]
    waiting: tuple[Any, ...]
    bundle_size: int

    @property
    def canaries(self) -> tuple[Bundle, ...]:
        return tuple(b for b in self.send if b.canary)

    @property
    def sent_ops(self) -> int:
        return sum(len(b.ops) for b in self.send)


def _chunks(ops: Sequence[Any], size: int) -> list[tuple[Any, ...]]:
    return [tuple(ops[i : i + size]) for i in range(0, len(ops), size)]


def plan_submission(
    ops: Sequence[Any],
    *,
    bundle: int = 1,
    canary: int = 0,
    free: int | None = None,
    over_limit: str = "wait",
) -> Plan:
    """The plan for `ops` (module docstring). `bundle` < 1 counts as 1 (flow's 0: no bundling);
    `canary` < 1: no canary. Raises ValueError for an unknown `over_limit`."""
    if over_limit not in OVER_LIMIT_CHOICES:
        raise ValueError(f"over_limit must be one of {OVER_LIMIT_CHOICES}, not {over_limit!r}")
    size = max(int(bundle or 1), 1)
    first = tuple(ops[: max(canary, 0)])
    rest = tuple(ops[len(first) :])
    gates = [Bundle(chunk, canary=True) for chunk in _chunks(first, size)]
    bundles = [Bundle(chunk) for chunk in _chunks(rest, size)]
    if free is None or len(gates) + len(bundles) <= free:
        return Plan((*gates, *bundles), (), size)
    if free < len(gates):
        return Plan((), tuple(ops), size)  # not even the canary fits: nothing goes
    room = free - len(gates)
    if over_limit == "bundle" and rest:
        if room == 0:
            return Plan(tuple(gates), rest, size)
        packed = max(size, math.ceil(len(rest) / room))
        return Plan((*gates, *(Bundle(c) for c in _chunks(rest, packed))), (), packed)
    kept = bundles[:room]
    waiting = tuple(op for b in bundles[room:] for op in b.ops)
    return Plan((*gates, *kept), waiting, size)


__all__ = ["OVER_LIMIT_CHOICES", "Bundle", "Plan", "plan_submission"]
