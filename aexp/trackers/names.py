"""Backend names, known without importing any adapter: aexp's own, entry points, dotted paths.

A backend is named in one of three ways (signac.rc's `[tracker] backend`, `bind_tracker`, the
CLI's `--backend`):

    wandb                          one of aexp's own backends (BUILTIN)
    aim                            an entry point of the group `aexp.trackers` that an installed
                                   package declares (`aim = "mypkg.trackers:AimAdapter"`)
    mypkg.trackers:AimAdapter      a dotted path to the class: `module:Class`, or
    mypkg.trackers.AimAdapter      `module.Class` (the last dot then separates the class)

This module imports nothing of aexp: aexp.settings checks backend names with it, and the adapter
modules (which read Settings) are not loaded for that. Where a name leads is answered by
`where`; importing the class is the registry's work (aexp/trackers/registry.py).
"""

from __future__ import annotations

import re
from functools import cache

# name -> "module:Class" of aexp's own backends, in the order docs list them.
BUILTIN: dict[str, str] = {
    "noop": "aexp.trackers.noop:NoopAdapter",
    "wandb": "aexp.trackers.wandb:WandbAdapter",
    "mlflow": "aexp.trackers.mlflow:MlflowAdapter",
    "otel": "aexp.trackers.otel:OtelAdapter",
}
ENTRY_POINT_GROUP = "aexp.trackers"

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_COLON_PATH = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")
_DOT_PATH = re.compile(rf"^{_IDENT}(\.{_IDENT})+$")
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def dotted_path(name: str) -> str | None:
    """`name` as "module:Class" when it is a dotted path to a class, else None.

    "pkg.mod:Cls" is returned as is; "pkg.mod.Cls" becomes "pkg.mod:Cls" (its last dot names
    the class, as in `python -m` and entry points). A plain name ("wandb") is None.
    """
    if _COLON_PATH.match(name):
        return name
    if _DOT_PATH.match(name):
        module, _, attr = name.rpartition(".")
        return f"{module}:{attr}"
    return None


@cache
def entry_points() -> dict[str, str]:
    """{name: "module:Class"} of the installed packages' `aexp.trackers` entry points (read
    once per process, from the installed packages' metadata: ~10-30 ms)."""
    from importlib.metadata import entry_points as installed

    return {ep.name: ep.value for ep in installed(group=ENTRY_POINT_GROUP)}


def where(name: str) -> str | None:
    """Where backend `name` is defined, as "module:Class": aexp's own first, then a dotted
    path, then an entry point (None: unknown). Imports no adapter."""
    if name in BUILTIN:
        return BUILTIN[name]
    path = dotted_path(name)
    if path is not None:
        return path
    if _PLAIN.match(name):
        return entry_points().get(name)
    return None


def known() -> list[str]:
    """The names a backend can be given without a dotted path: aexp's own, then entry points."""
    return [*BUILTIN, *sorted(set(entry_points()) - set(BUILTIN))]


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a backend, in words (None: it can). Nothing is imported: a dotted
    path is taken on its form, and its module is imported when the backend is first used."""
    if where(name) is not None:
        return None
    return (
        f"names an unknown tracker backend {name!r}; known backends: {', '.join(sorted(known()))} "
        "(or a dotted path to an adapter class, e.g. mypkg.trackers:MyAdapter)"
    )


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "dotted_path", "entry_points", "known", "name_problem"]
