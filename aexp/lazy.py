"""Names of a package imported on first use (PEP 562), so that importing the package is cheap.

`aexp.sync`, `aexp.trackers` and `aexp.workflow` export names whose modules load SDKs, the
upload machinery or the attempt machinery; `status`, `--help` and an idle sync need none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(
    namespace: dict[str, Any], where: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's `__getattr__` and `__dir__` for the names in `where` (name -> module).

    `namespace` is the package's `globals()`: a name, once imported, is stored there and later
    lookups do not reach `__getattr__`. `submodules` are names that resolve to the package's own
    submodule of that name. An unknown name raises AttributeError, as for any module.
    """
    package = namespace["__name__"]
    own = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            if name in own:
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(module), name)
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__


__all__ = ["lazy_names"]
