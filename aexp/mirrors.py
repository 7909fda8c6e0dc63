"""The live backends of one execution attempt: the trackers fed while the experiment runs.

The journal is the run's record; a live backend (W&B) is a mirror of it that the attempt feeds
as it goes. Each one is opened at the start of the attempt, repaired first from the journal when
the previous attempt did not end cleanly (a SIGKILL can cost W&B its unwritten block), and
closed at the end. A backend that fails (refuses to open, raises while logging) is contained: its
error is kept for the job document, one warning line is printed, the attempt goes on with the
journal and the other backends, and the next sync brings the backend up to the journal.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aexp.binding import backend_parts
from aexp.handles import adapter_for, handle_for
from aexp.journal import Journal
from aexp.trackers import ADAPTERS, RunHandle, TrackerAdapter


@cache
def _accepts(method: Callable[..., Any], keyword: str) -> bool:
    # Adapters written to the five-method recipe may leave out the extensions (`step=`,
    # `preempted=`, `run_id=`): call them with what they take.
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True
    return keyword in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    func = getattr(method, "__func__", method)
    return method(*args, **{k: v for k, v in kwargs.items() if _accepts(func, k)})


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


@dataclass
class _Mirror:
    name: str
    adapter: TrackerAdapter
    handle: RunHandle


@dataclass
class LiveMirrors:
    """The live backends of one attempt of `job`'s run (see the module docstring)."""

    job: Any
    open_mirrors: list[_Mirror] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # backend -> why it stopped mirroring
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)  # state to store, if new

    def open(
        self,
        binding: Mapping[str, Any],
        attempt: int,
        journal: Journal | None,
        *,
        unclean: bool = False,
        spec: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        """Open every live backend of `binding` for execution attempt `attempt` (1, 2, ...).

        `journal` is the run's journal as it stood before this attempt (None on a first attempt):
        its summary is what the run has logged so far; when the previous attempt did not end
        cleanly (`unclean`: killed), each backend is first repaired from it. `spec` gives the
        run's spec (`aexp.spec.run_spec`) from the attempt, asked only when a backend is live.
        """
        for name, part in backend_parts(binding).items():
            if getattr(ADAPTERS.get(name), "feed", "live") != "live":
                continue  # the journal alone, or replayed at sync: nothing to open here
            try:
                adapter = adapter_for(binding, name)
                stored = handle_for(self.job, binding, name, spec=spec() if spec else None)
                if journal is not None:
                    stored.extra["_summary"] = journal.summary
                    if unclean:
                        adapter.repair(stored, journal, workdir=self.job.path)
                if attempt == 1:
                    handle = self._init(adapter, stored)
                else:
                    handle = _call(
                        adapter.resume_run, stored, workdir=self.job.path, attempt=attempt
                    )
            except Exception as exc:
                self._fail(name, "could not open the run", exc)
                continue
            # Keep what the backend needs to re-open the run elsewhere and cannot be rebuilt
            # from the binding (a backend that chose its own run id, say).
            new = {
                key: value
                for key, value in handle.persistent_extra().items()
                if stored.extra.get(key) != value
            }
            if new:
                self.extras[name] = {**(part.get("extra") or {}), **new}
            self.open_mirrors.append(_Mirror(name, adapter, handle))

    def _init(self, adapter: TrackerAdapter, handle: RunHandle) -> RunHandle:
        extra = handle.extra
        opened = _call(
            adapter.init_run,
            project=handle.project,
            group=handle.group,
            tags=list(extra.get("tags") or []),
            config=dict(extra.get("_config") or {}),
            notes=extra.get("notes"),
            offline=bool(extra.get("offline")),
            workdir=self.job.path,
            run_id=handle.id,
        )
        if opened.id != handle.id:  # a backend that chooses its own ids: remember it
            opened.extra["id"] = opened.id
        return opened

    def _fail(self, name: str, what: str, exc: BaseException) -> None:
        reason = f"{what}: {_sentence(exc)}"
        self.errors.setdefault(name, reason)
        print(
            f"warning: job {self.job.id}: the {name} backend {reason}; the run goes on in its "
            "journal and the next sync brings the backend up to date.",
            file=sys.stderr,
        )

    def _each(self, what: str, call: Callable[[_Mirror], Any]) -> None:
        for mirror in list(self.open_mirrors):
            try:
                call(mirror)
            except Exception as exc:
                self.open_mirrors.remove(mirror)
                self._fail(mirror.name, what, exc)

    def log(self, row: Mapping[str, Any], step: int) -> None:
        """One history row, to every backend still mirroring."""
        if self.open_mirrors:
            self._each(
                f"failed to log step {step}",
                lambda m: _call(m.adapter.log, m.handle, row, step=step),
            )

    def log_artifact(self, name: str, path: Any) -> None:
        """One artifact, to every backend still mirroring."""
        self._each(
            f"failed to log artifact {name!r}",
            lambda m: m.adapter.log_artifact(m.handle, name, path),
        )

    def finish(self, exit_code: int, *, preempted: bool) -> None:
        """Close every open backend (once; the list is emptied)."""
        self._each(
            "failed to close the run",
            lambda m: _call(m.adapter.finish, m.handle, exit_code=exit_code, preempted=preempted),
        )
        self.open_mirrors.clear()


def has_live(binding: Mapping[str, Any]) -> bool:
    """Whether any backend of `binding` is fed live (known from the registry, no SDK import)."""
    return any(
        getattr(ADAPTERS.get(name), "feed", "live") == "live" for name in backend_parts(binding)
    )


__all__ = ["LiveMirrors", "has_live"]
