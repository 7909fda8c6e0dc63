"""One `python project.py submit` pass on SLURM: planned, sent, reported, recorded.

flow chooses what is eligible and renders each batch script; this module decides the rest and
sends it with `sbatch --parsable`, keeping the job id sbatch prints (flow discards it):

1. the limits that apply are learned (aexp.slurm.limits) and the queue counted;
2. the plan (aexp.slurm.plan): the canary first, then the rest, at most what the limits leave;
3. the canary's bundles are sent; the rest are sent with `--dependency=afterok:<canary ids>
   --kill-on-invalid-dep=no` (never `sbatch -W`, which waits: flow's own `--after` renders it;
   `submit --after ID` is sent as a dependency here too). Jobs held behind an earlier canary
   that failed move behind the new one (or, without `--canary`, are released);
4. `[slurm] walltime = auto` / `memory = auto`: `--time` / `--mem` from past attempts
   (aexp.slurm.sizing), unless given after `--`;
5. sbatch refusing a submission (or not answering) stops the pass there: what was sent stays
   queued and is named, the refused one and those after it are named as not sent, and the pass
   ends with SubmissionRefused (exit code 1). A submission is reported sent only once sbatch has
   printed its job id.

Each pass appends one line to `<project>/logs/submit.jsonl` (what was sent with its SLURM ids,
what was refused and why, how many wait) and records its canaries in `logs/canary.json`.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.errors import SubmissionError
from aexp.jobdoc import now_iso
from aexp.slurm import canary as canaries
from aexp.slurm import commands
from aexp.slurm.limits import Limits, learn_limits
from aexp.slurm.plan import Bundle, Plan, plan_submission
from aexp.slurm.sizing import MIN_RUNS, Suggestion

SUBMIT_LOG = "submit.jsonl"


class SubmissionRefused(SubmissionError):
    """sbatch refused (or did not answer) a submission; those before it stay queued."""


@dataclass
class Sent:
    """One SLURM job this pass queued: its id (as sbatch printed it), name and operations."""

    slurm_id: str
    name: str
    ops: tuple[Any, ...]
    canary: bool


@dataclass
class Outcome:
    """What a pass did: sent (in order), refused (the bundle and sbatch's reason), not sent
    after a refusal, waiting for the next submit, jobs held behind a failed canary: moved behind
    this pass's canary, or still held."""

    eligible: int = 0
    sent: list[Sent] = field(default_factory=list)
    refused: tuple[Bundle, str] | None = None
    unanswered: bool = False
    not_sent: int = 0
    waiting: int = 0
    regated: list[str] = field(default_factory=list)
    still_held: list[str] = field(default_factory=list)


def sizing_flags(
    size: int, parallel: bool, suggestion: Suggestion | None, flags: Sequence[str], *, want: str
) -> list[str]:
    """sbatch flags for one bundle of `size` operations from `suggestion` (`want`: "walltime",
    "memory" or both, comma-separated), unless `flags` (after `--`) set them already. Serial
    bundles add walltimes and keep the largest memory; parallel ones the reverse."""
    out: list[str] = []
    if suggestion is None:
        return out
    given = " ".join(flags)
    walltime = suggestion.walltime_s if suggestion.wall_runs >= MIN_RUNS else None
    memory = suggestion.memory_mb if suggestion.memory_runs >= MIN_RUNS else None
    if "walltime" in want and walltime and not _has(flags, "--time", "-t"):
        out.append(f"--time={walltime * (1 if parallel else size) // 60}")
    if "memory" in want and memory and "--mem" not in given:
        out.append(f"--mem={memory * (size if parallel else 1)}M")
    return out


def sizing_note(suggestion: Suggestion | None, want: str) -> str | None:
    """One line saying what `[slurm] walltime/memory = auto` (`want`) uses, or why not."""
    if not want:
        return None
    if suggestion is None:
        return f"note: [slurm] {want} = auto: no past attempts measured; the directives stand."
    said = []
    for key, value, runs in (
        ("walltime", suggestion.walltime_s, suggestion.wall_runs),
        ("memory", suggestion.memory_mb, suggestion.memory_runs),
    ):
        if key not in want:
            continue
        if value is None or runs < MIN_RUNS:
            said.append(
                f"{key} = auto: {runs} measured run(s), {MIN_RUNS} needed; the directive stands"
            )
        elif key == "walltime":
            said.append(f"walltime {value // 60} min from {runs} finished runs")
        else:
            said.append(f"memory {value} MiB from {runs} runs")
    return "note: [slurm] " + "; ".join(said) + " (aexp resources)."


def _has(flags: Sequence[str], long: str, short: str) -> bool:
    return any(f == long or f.startswith(long + "=") or f.startswith(short) for f in flags)


class Submission:
    """One pass (module docstring). The project gives it the eligible operations in flow's order
    (`ops`), and three functions of flow's: `name_of(ops)` (the SLURM job name flow recognises
    them by), `render(ops, name)` (the batch script) and `jobs_of(op)` (the job ids an operation
    runs). `say` prints a line (stderr)."""

    def __init__(
        self,
        *,
        settings: Any,
        log_dir: str,
        flags: Sequence[str] = (),
        canary: int | None = None,
        bundle: int = 1,
        parallel: bool = False,
        pretend: bool = False,
        hold: bool = False,
        after: str | None = None,
        sizes: Suggestion | None = None,
        env_flags: Sequence[str] = (),
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.flags = [*(flags or ()), *env_flags]
        self.canary = canary or 0
        self.bundle = bundle
        self.parallel = parallel
        self.pretend = pretend
        self.hold = hold
        self.after = after
        self.sizes = sizes
        self.say = say or (lambda line: print(line, file=sys.stderr))
        self.limits = Limits()
        self.outcome = Outcome()

    # -- the pass -----------------------------------------------------------------------------
    def run(
        self,
        ops: Sequence[Any],
        *,
        name_of: Callable[[Sequence[Any]], str],
        render: Callable[[Sequence[Any], str], str],
        jobs_of: Callable[[Any], list[str]],
    ) -> Outcome:
        """Plan and send `ops`; returns the Outcome (also said, and recorded unless pretend).
        Raises SubmissionRefused after saying what was sent, when sbatch refused one."""
        out = self.outcome
        out.eligible = len(ops)
        note = sizing_note(self.sizes, self.want) if ops else None
        if note:
            self.say(note)
        rows = self._queue()
        if not self.pretend:
            self.limits = learn_limits(self.settings, flags=self.flags)
        plan = plan_submission(
            ops,
            bundle=self.bundle,
            canary=self.canary,
            free=self.limits.free,
            over_limit=self.settings.slurm.over_limit,
        )
        out.waiting = len(plan.waiting)
        held = canaries.held(self.log_dir, rows) if rows else []
        try:
            gate = self._send(plan.canaries, [], name_of, render)
            if gate and not self.pretend:
                canaries.remember(
                    self.log_dir,
                    [
                        (s.slurm_id, s.name, [j for op in s.ops for j in jobs_of(op)])
                        for s in out.sent
                    ],
                    now_iso(),
                )
            rest = tuple(b for b in plan.send if not b.canary)
            if not self.canary or gate or self.pretend:
                self._send(rest, gate, name_of, render)
            else:
                out.not_sent += sum(len(b.ops) for b in rest)
            self._regate(held, gate)
        finally:
            self._report(plan)
        return out

    def _queue(self) -> list[commands.QueueRow]:
        try:
            return commands.queue(user=commands.current_user())
        except commands.SlurmCommandError:
            return []

    def _send(
        self,
        bundles: Sequence[Bundle],
        gate: Sequence[str],
        name_of: Callable[[Sequence[Any]], str],
        render: Callable[[Sequence[Any], str], str],
    ) -> list[str]:
        """Send `bundles` in order (after `gate`'s SLURM jobs, if any); returns their SLURM ids.
        Stops at a refusal (recorded in the outcome, raised as SubmissionRefused)."""
        out = self.outcome
        ids: list[str] = []
        for index, bundle in enumerate(bundles):
            name = name_of(bundle.ops)
            flags = self._flags_for(bundle, gate)
            if self.pretend:
                self.say(f"Submitting cluster job '{name}':")
                for op in bundle.ops:
                    self.say(f" - Group: {op}")
                print(render(bundle.ops, name))
                print()
                print(f"# Submit command: sbatch {' '.join(flags)}".rstrip())
                ids.append(f"<canary {len(ids) + 1}>")  # what the dependents are shown to wait for
                continue
            script = render(bundle.ops, name)
            try:
                slurm_id = commands.sbatch(script, flags)
            except (commands.SbatchRefused, commands.SbatchUnanswered) as exc:
                out.refused = (bundle, exc.reason)
                out.unanswered = isinstance(exc, commands.SbatchUnanswered)
                out.not_sent += sum(len(b.ops) for b in bundles[index:])
                raise SubmissionRefused(self._refusal(bundle, exc.reason)) from None
            self.say(f"Submitting cluster job '{name}':")
            for op in bundle.ops:
                self.say(f" - Group: {op}")
            self.say(f" - SLURM job {slurm_id}{' (canary)' if bundle.canary else ''}")
            out.sent.append(Sent(slurm_id, name, bundle.ops, bundle.canary))
            ids.append(slurm_id)
        return ids

    def _flags_for(self, bundle: Bundle, gate: Sequence[str]) -> list[str]:
        flags = list(self.flags)
        if any(f.startswith("--job-name") or f == "-J" or f.startswith("-J") for f in flags):
            raise SubmissionError(
                "submit refused: --job-name is how flow recognises its submissions; leave it "
                "out of the sbatch flags; nothing was submitted."
            )
        after = [*([self.after] if self.after else []), *gate]
        if after:
            flags += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=no"]
        if self.hold:
            flags.append("--hold")
        sized = sizing_flags(len(bundle.ops), self.parallel, self.sizes, flags, want=self.want)
        return flags + sized

    @property
    def want(self) -> str:
        """What `[slurm]` sizes from past attempts: "walltime", "memory", both, or ""."""
        slurm = self.settings.slurm
        return " and ".join(k for k in ("walltime", "memory") if getattr(slurm, k) == "auto")

    def _regate(self, held: list[str], gate: list[str]) -> None:
        """Move the jobs held behind a failed canary behind the canary this pass sent. Without
        a new canary they stay held: a plain `submit` must not let loose what a canary caught."""
        if not held or self.pretend:
            return
        if not gate:
            self.outcome.still_held.extend(held)
            return
        try:
            commands.update_dependency(held, f"afterok:{':'.join(gate)}")
        except commands.SlurmCommandError as exc:
            self.say(f"warning: the jobs held behind a failed canary stay held ({exc}).")
            return
        self.outcome.regated.extend(held)

    # -- what it says -------------------------------------------------------------------------
    def _refusal(self, bundle: Bundle, reason: str) -> str:
        out = self.outcome
        what = ", ".join(str(op) for op in bundle.ops[:3]) + (" ..." * (len(bundle.ops) > 3))
        verb = "did not answer for" if out.unanswered else "refused"
        sent = sum(len(s.ops) for s in out.sent)
        kept = (
            f"the {sent} submitted before it stay queued (SLURM jobs {_ids(out.sent)})"
            if sent
            else "nothing was submitted"
        )
        fate = (
            "it may or may not be queued (status shows it [Q] if it is); " if out.unanswered else ""
        )
        return (
            f"sbatch {verb} {what} ({reason}); {kept}; {fate}{out.not_sent} eligible job"
            f"{'s were' if out.not_sent != 1 else ' was'} not sent: the next submit sends them."
        )

    def _report(self, plan: Plan) -> None:
        out = self.outcome
        sent = sum(len(s.ops) for s in out.sent)
        if self.pretend:
            if plan.send or plan.waiting:
                self.say(
                    f"submit --pretend: {plan.sent_ops} of {out.eligible} eligible would be sent "
                    f"as {len(plan.send)} SLURM job{'s' * (len(plan.send) != 1)}"
                    + (f", {len(plan.canaries)} of them the canary" if plan.canaries else "")
                    + "; nothing was submitted."
                )
            return
        if out.eligible or out.regated or out.still_held:
            self.say(self._summary(sent))
        self._record(sent)

    def _summary(self, sent: int) -> str:
        out = self.outcome
        jobs = len(out.sent)
        parts = [
            f"submit: {sent} of {out.eligible} eligible submitted as {jobs} SLURM job"
            f"{'s' * (jobs != 1)}" + (f" ({_ids(out.sent)})" if jobs else "")
        ]
        gate = [s for s in out.sent if s.canary]
        if gate:
            rest = sent - sum(len(s.ops) for s in gate)
            parts.append(
                f"canary: {sum(len(s.ops) for s in gate)} job(s) in SLURM job {_ids(gate)}; the "
                f"other {rest} start only once it succeeds (--dependency=afterok)"
            )
        if out.waiting:
            tightest = self.limits.tightest
            why = tightest.describe() if tightest else "the queue limit"
            parts.append(f"{out.waiting} wait for the next submit ({why})")
        if out.not_sent and out.refused is None:
            parts.append(f"{out.not_sent} not sent: their canary was not submitted")
        if out.regated:
            parts.append(f"{len(out.regated)} held SLURM job(s) now wait for the new canary")
        if out.still_held:
            parts.append(
                f"{len(out.still_held)} SLURM job(s) stay held behind a failed canary (status "
                "says which; submit --canary puts them behind a new one)"
            )
        if self.limits.unread and out.waiting:
            parts.append("not known: " + "; ".join(self.limits.unread))
        return "; ".join(parts) + "."

    def _record(self, sent: int) -> None:
        out = self.outcome
        line = {
            "at": now_iso(),
            "eligible": out.eligible,
            "submitted": sent,
            "sent": [
                {"slurm_id": s.slurm_id, "name": s.name, "ops": len(s.ops), "canary": s.canary}
                for s in out.sent
            ],
            "refused": None
            if out.refused is None
            else {
                "ops": [str(op) for op in out.refused[0].ops],
                "reason": out.refused[1],
                "unanswered": out.unanswered,
            },
            "not_sent": out.not_sent,
            "waiting": out.waiting,
            "limits": self.limits.describe(),
            "regated": out.regated,
            "still_held": out.still_held,
        }
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            with open(os.path.join(self.log_dir, SUBMIT_LOG), "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        except OSError as exc:  # the queue holds the truth; the record is a convenience
            self.say(f"warning: {SUBMIT_LOG} not written ({exc.strerror or exc}).")


def _ids(sent: Sequence[Sent]) -> str:
    ids = [s.slurm_id for s in sent]
    if len(ids) > 2 and all(int(b) == int(a) + 1 for a, b in itertools.pairwise(ids)):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(ids[:5]) + (" ..." * (len(ids) > 5))


__all__ = ["SUBMIT_LOG", "Outcome", "Sent", "Submission", "SubmissionRefused", "sizing_flags"]
