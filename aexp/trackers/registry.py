"""The registry: backend name -> adapter class, for aexp's own backends and anyone else's.

`ADAPTERS[name]` imports the class on its first lookup (aexp/trackers/names.py says where a
name leads: aexp's own, a dotted path, an entry point of the group `aexp.trackers`). `name in
ADAPTERS` imports nothing. Every process of the workflow (the binder, each attempt, the sync)
finds a backend again from the name stored in the job's binding, so a name must lead to the
same class everywhere: `recreatable` refuses, at bind time, an adapter object no other process
could re-create (docs/tracker-adapters.md, "A backend of your own").
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from aexp.errors import TrackerInitError
from aexp.trackers import names
from aexp.trackers.base import TrackerAdapter


def _origin(cls: type) -> type:
    """The user's class behind a class the registry named (see `_named`)."""
    return cls.__dict__.get("_aexp_origin", cls)


def _named(cls: type[TrackerAdapter], name: str) -> type[TrackerAdapter]:
    """`cls` whose `name` is `name`: itself when it says so, else a subclass that only renames
    it (a class found by its dotted path keeps its own `name`, e.g. "aim", but every process
    must store and find it under the path)."""
    if getattr(cls, "name", None) == name:
        return cls
    return type(
        cls.__name__,
        (cls,),
        {
            "name": name,
            "_aexp_origin": cls,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        },
    )


def _import(name: str, path: str) -> type[TrackerAdapter]:
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise TrackerInitError(
            f"tracker backend {name!r} is {path}, which cannot be imported here "
            f"({type(exc).__name__}: {exc}); install its package or put it on PYTHONPATH."
        ) from None
    if not (inspect.isclass(target) and issubclass(target, TrackerAdapter)):
        raise TrackerInitError(
            f"tracker backend {name!r} is {path}, which is not a TrackerAdapter subclass."
        )
    if inspect.isabstract(target):
        missing = ", ".join(sorted(getattr(target, "__abstractmethods__", ())))
        raise TrackerInitError(
            f"tracker backend {name!r} is {path}, which does not implement {missing}."
        )
    return _named(target, name)


class Registry(MutableMapping[str, type[TrackerAdapter]]):
    """Backend name -> adapter class, each class imported on the first lookup of its name.

    Iterating lists aexp's own backends, the entry points and the names set at run time (a test
    may register a class: `ADAPTERS["x"] = XAdapter`); a dotted path is found when looked up.
    A lookup raises KeyError for an unknown name and TrackerInitError for a name whose module
    cannot be imported or that is not an adapter class.
    """

    def __init__(self) -> None:
        self._set: dict[str, str] = {}  # names registered at run time -> "module:Class"
        self._loaded: dict[str, type[TrackerAdapter]] = {}

    def _where(self, name: str) -> str | None:
        return self._set.get(name) or names.where(name)

    def __getitem__(self, name: str) -> type[TrackerAdapter]:
        cls = self._loaded.get(name)
        if cls is None:
            path = self._where(name) if isinstance(name, str) else None
            if path is None:
                raise KeyError(name)
            cls = self._loaded[name] = _import(name, path)
        return cls

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """`Mapping.get`, with a loaded name answered by one dict lookup (asked per job)."""
        cls = self._loaded.get(name) if isinstance(name, str) else None
        if cls is not None:
            return cls
        try:
            return self[name]
        except KeyError:
            return default

    def __setitem__(self, name: str, cls: type[TrackerAdapter]) -> None:
        self._set[name] = f"{cls.__module__}:{cls.__qualname__}"
        self._loaded[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._set[name]
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        # A name looked up once stays where it led (the binding's validation asks per job).
        if not isinstance(name, str):
            return False
        return name in self._loaded or self._where(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*names.known(), *self._set]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*names.known(), *self._set]))


ADAPTERS = Registry()


def get_adapter(name: str, **options: Any) -> TrackerAdapter:
    """Construct the adapter registered as `name` with `options`.

    Raises TrackerInitError for an unknown name (listing the known ones), a class that cannot
    be imported, or a missing SDK.
    """
    try:
        cls = ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise TrackerInitError(
            f"unknown tracker backend {name!r}; known backends: {known} (or a dotted path to "
            "an adapter class, e.g. mypkg.trackers:MyAdapter)."
        ) from None
    return cls(**options)


def _refuse(adapter: TrackerAdapter, why: str) -> TrackerInitError:
    cls = _origin(type(adapter))
    return TrackerInitError(
        f"cannot bind with the adapter object {cls.__module__}.{cls.__qualname__}: {why}, so "
        "the workflow's later processes (each attempt, the sync) could not re-create it."
    )


def recreatable(adapter: TrackerAdapter) -> TrackerAdapter:
    """`adapter`, once it is sure that every other process can make the same adapter again from
    the binding (its backend name and `options()`); else TrackerInitError, one sentence.

    - a name registered to the adapter's class (aexp's own, an entry point, a dotted path, a
      name set in ADAPTERS): kept as it is;
    - a name registered to another class (an adapter calling itself "wandb"): refused, the other
      processes would use that class instead;
    - an unregistered name: the class is found by its dotted path `module:Class`, which becomes
      the adapter's name (set on this object); refused when that path does not import the same
      class (a class defined in `__main__` or inside a function);
    - `options()` must be JSON (it is stored in the binding).
    """
    cls = _origin(type(adapter))
    name = getattr(adapter, "name", None)
    if not isinstance(name, str) or not name:
        raise _refuse(adapter, "it has no name (set the class attribute `name`)")
    if name in ADAPTERS:
        try:
            registered = _origin(ADAPTERS[name])
        except TrackerInitError as exc:
            raise _refuse(adapter, str(exc).rstrip(".")) from None
        if registered is not cls:
            raise _refuse(
                adapter,
                f"its name {name!r} is the backend {registered.__module__}."
                f"{registered.__qualname__}, which would stand in for it",
            )
    else:
        path = f"{cls.__module__}:{cls.__qualname__}"
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            where = "in __main__" if cls.__module__ == "__main__" else "inside a function"
            raise _refuse(
                adapter,
                f"its name {name!r} is not a registered backend and its class is defined "
                f"{where}; move it into a module and name it in signac.rc by its dotted path",
            )
        try:
            found = _origin(ADAPTERS[path])
        except TrackerInitError as exc:
            raise _refuse(adapter, str(exc).rstrip(".")) from None
        if found is not cls:
            raise _refuse(adapter, f"{path} imports another class than the object's")
        adapter.name = path  # type: ignore[misc]  # the key every process finds it by
    try:
        json.dumps(adapter.options())
    except (TypeError, ValueError) as exc:
        raise _refuse(adapter, f"its options() are not JSON ({exc})") from None
    return adapter


__all__ = ["ADAPTERS", "Registry", "get_adapter", "recreatable"]
