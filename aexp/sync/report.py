"""What a sync did, per backend and in runs: the summary `aexp sync-offline` and the
`sync_offline` operation end with, and its JSON.

    wandb: 3 uploaded, 1 failed (no credentials: wandb login); mlflow: 4 replayed
    dry run: wandb: would upload 19 run(s) (26 fragments); mlflow: would replay 19 run(s)

A W&B run has one result per fragment; it counts once: failed when any of its fragments failed,
uploaded when any was uploaded, else already synced (every fragment was) or skipped (still
executing, claimed by another process, not due). A job whose document cannot be read counts as
`corrupt` (failed). The reasons of the failures follow their count, the most frequent first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aexp.sync.result import ALREADY_SYNCED, NOT_ATTEMPTED, SyncResult

SCHEMA = "aexp.sync-offline/1"
# How each backend's feed names a run that got its data.
_DONE = {"wandb": "uploaded"}
_DONE_DEFAULT = "replayed"


@dataclass
class BackendCounts:
    """The runs of one backend, by outcome."""

    done: int = 0  # uploaded (W&B) or replayed
    already: int = 0
    skipped: int = 0
    failed: int = 0
    fragments: int = 0  # W&B fragments uploaded (or that would be)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    backends: dict[str, BackendCounts]
    corrupt: int
    dry_run: bool

    @property
    def failed(self) -> int:
        return self.corrupt + sum(c.failed for c in self.backends.values())

    def line(self) -> str:
        """The one-line summary (module docstring)."""
        parts = []
        for name, counts in self.backends.items():
            done = _DONE.get(name, _DONE_DEFAULT)
            bits = []
            if self.dry_run:
                if counts.done:
                    verb = "would upload" if name == "wandb" else "would replay"
                    frags = f" ({counts.fragments} fragment(s))" if name == "wandb" else ""
                    bits.append(f"{verb} {counts.done} run(s){frags}")
            elif counts.done:
                bits.append(f"{counts.done} {done}")
            if counts.already:
                bits.append(f"{counts.already} already synced")
            if counts.skipped:
                bits.append(f"{counts.skipped} skipped")
            if counts.failed:
                reasons = [r for r, _ in counts.reasons.most_common(2)]
                more = "; ..." if len(counts.reasons) > 2 else ""
                bits.append(f"{counts.failed} failed ({'; '.join(reasons)}{more})")
            if bits:
                parts.append(f"{name}: {', '.join(bits)}")
        if self.corrupt:
            parts.append(f"{self.corrupt} job(s) corrupt (their documents cannot be read)")
        text = "; ".join(parts) or "nothing to sync"
        return f"dry run: {text}" if self.dry_run else text

    def as_json(self) -> dict[str, Any]:
        """{backend: counts}, the same counts as `line()` (a dry run's: `would_upload` or
        `would_replay`)."""

        def done(name: str) -> str:
            word = _DONE.get(name, _DONE_DEFAULT)
            return (
                {"uploaded": "would_upload", "replayed": "would_replay"}[word]
                if (self.dry_run)
                else word
            )

        return {
            name: {
                done(name): c.done,
                "already_synced": c.already,
                "skipped": c.skipped,
                "failed": c.failed,
                "fragments": c.fragments if name == "wandb" else None,
                "failures": dict(c.reasons),
            }
            for name, c in self.backends.items()
        }


def short_reason(result: SyncResult) -> str:
    """A failure's reason in a few words: its last line, without the host prefix."""
    lines = [ln.strip() for ln in (result.stderr or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else "failed"
    text = text.removeprefix(f"{NOT_ATTEMPTED}: ")
    return text if len(text) <= 80 else text[:77] + "..."


def summarize(results: Iterable[SyncResult], *, dry_run: bool = False) -> Summary:
    """Count `results` per backend and run (module docstring)."""
    runs: dict[tuple[str, str, str], list[SyncResult]] = {}
    corrupt = 0
    for r in results:
        if not r.backend:
            corrupt += 0 if r.ok else 1
            continue
        runs.setdefault((r.backend, r.job_id or "", r.run_id or ""), []).append(r)
    backends: dict[str, BackendCounts] = {}
    for (name, _, _), items in sorted(runs.items(), key=lambda kv: (kv[0][0] != "wandb", kv[0])):
        counts = backends.setdefault(name, BackendCounts())
        failed = [r for r in items if not r.ok]
        ran = [r for r in items if r.ok and not r.skipped]
        if failed:
            counts.failed += 1
            counts.reasons[short_reason(failed[0])] += 1
        elif ran:
            counts.done += 1
            counts.fragments += len(ran)
        elif all(r.skipped == ALREADY_SYNCED for r in items):
            counts.already += 1
        else:
            counts.skipped += 1
    return Summary(backends, corrupt, dry_run)


def failure_lines(results: Iterable[SyncResult]) -> list[str]:
    """One line per failure, except runs this host could not sync to (said once, above)."""
    lines = []
    for r in results:
        if r.ok:
            continue
        last = [ln.strip() for ln in (r.stderr or "").splitlines() if ln.strip()]
        text = (last[-1] if last else "failed")[:600]
        if text.startswith(NOT_ATTEMPTED):
            continue
        if not r.backend:
            lines.append(f"failed: job {r.job_id}: {text}")
            continue
        where = r.path if r.backend == "wandb" else r.backend
        lines.append(f"failed: job {r.job_id} run {r.run_id} ({where}): {text}")
    return lines


__all__ = ["SCHEMA", "BackendCounts", "Summary", "failure_lines", "short_reason", "summarize"]
