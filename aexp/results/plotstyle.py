"""What every figure of aexp shares: matplotlib present or not, colours per configuration,
labels, and writing the file. matplotlib is imported inside these functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aexp.results.select import SelectionError, format_value, lookup

FORMATS = (".png", ".svg", ".pdf")
INSTALL_HINT = "pip install 'agentic-experiments[plot]'"
NO_VALUE = object()  # a state-point key the job lacks


class PlotUnavailable(SelectionError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise PlotUnavailable (one sentence with the install command) without matplotlib."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable(f"plotting needs matplotlib; install it with: {INSTALL_HINT}")


def check_out(path: str | Path) -> Path:
    """`path` if it names a file type a figure can be written as (FORMATS), else SelectionError
    (checked before any work is done)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SelectionError(
            f"cannot write {path.name}: the file name must end in {', '.join(FORMATS)}."
        )
    return path


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write `fig` to `path` (.png, .svg or .pdf, by its suffix); returns the path.

    Raises SelectionError for another suffix, OSError when the file cannot be written.
    """
    path = check_out(path)
    fig.savefig(path, dpi=120)
    return path


def config_of(record: Any, keys: Sequence[str]) -> tuple[Any, ...]:
    """The record's values of `keys` (NO_VALUE where its state point lacks one)."""
    return tuple(lookup(record.statepoint, key, NO_VALUE) for key in keys)


def value_order(value: Any) -> tuple[int, Any]:
    """Sort key of a state-point value: numbers by value, then strings, then the rest."""
    if value is NO_VALUE:
        return (3, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1 if isinstance(value, str) else 2, format_value(value))


def label_of(keys: Sequence[str], values: Sequence[Any]) -> str:
    """`lr=0.1, hidden=64` (`-` for a value the job lacks)."""
    return ", ".join(
        f"{k}={'-' if v is NO_VALUE else format_value(v)}"
        for k, v in zip(keys, values, strict=True)
    )


def colours(values: Sequence[Any]) -> dict[Any, Any]:
    """A colour per distinct value (in the given order): a sequential map when the values are
    single numbers, a qualitative one otherwise."""
    from matplotlib import colormaps

    def number(v: Any) -> bool:
        if isinstance(v, tuple):
            return len(v) == 1 and number(v[0])
        return isinstance(v, int | float) and not isinstance(v, bool)

    if len(values) > 1 and all(number(v) or v == (NO_VALUE,) for v in values):
        cmap = colormaps["viridis"]
        return {v: cmap(0.9 * i / (len(values) - 1)) for i, v in enumerate(values)}
    cmap = colormaps["tab10" if len(values) <= 10 else "tab20"]
    return {v: cmap(i % cmap.N) for i, v in enumerate(values)}


__all__ = [
    "FORMATS",
    "INSTALL_HINT",
    "NO_VALUE",
    "PlotUnavailable",
    "check_out",
    "colours",
    "config_of",
    "label_of",
    "require_matplotlib",
    "save_figure",
    "value_order",
]
