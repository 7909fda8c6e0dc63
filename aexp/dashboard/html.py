"""Small HTML pieces the dashboard's cards are made of (Bulma classes, as signac-dashboard's own
pages use). Every value is escaped here; the cards are inserted into signac-dashboard's pages as
they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

# The colour of each state's tag.
_STATE_CLASS = {
    "finished": "is-success",
    "failed": "is-danger",
    "preempted": "is-warning",
    "running": "is-info",
    "completed": "is-primary",
    "bound": "is-light",
    "unbound": "is-white",
    "corrupt": "is-danger is-light",
}


def text(value: Any) -> str:
    """A value as the CLI prints it: `-` for None, floats to 6 significant digits, JSON else."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def state_tag(state: str) -> Markup:
    css = _STATE_CLASS.get(state, "is-light")
    return Markup('<span class="tag {} aexp-state">{}</span>').format(css, state)


def link(url: str | None, label: str, *, external: bool = True) -> Markup:
    if not url:
        return Markup(escape(label))
    if external:
        return Markup('<a href="{}" target="_blank" rel="noopener">{}</a>').format(url, label)
    return Markup('<a href="{}">{}</a>').format(url, label)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    table_id: str | None = None,
    row_attrs: Iterable[Mapping[str, str]] | None = None,
) -> Markup:
    """A Bulma table; cells may be Markup (kept) or values (escaped via `text`)."""
    attrs_iter = iter(row_attrs) if row_attrs is not None else None
    parts = [
        Markup('<div class="table-container"><table class="table is-narrow is-hoverable"')
        + (Markup(' id="{}"').format(table_id) if table_id else Markup(""))
        + Markup(">")
    ]
    parts.append(Markup("<thead><tr>"))
    parts.extend(Markup("<th>{}</th>").format(h) for h in header)
    parts.append(Markup("</tr></thead><tbody>"))
    for row in rows:
        attrs = next(attrs_iter) if attrs_iter is not None else {}
        parts.append(
            Markup("<tr")
            + Markup("").join(Markup(' {}="{}"').format(k, v) for k, v in attrs.items())
            + Markup(">")
        )
        for cell in row:
            value = cell if isinstance(cell, Markup) else text(cell)
            parts.append(Markup("<td>{}</td>").format(value))
        parts.append(Markup("</tr>"))
    parts.append(Markup("</tbody></table></div>"))
    return Markup("").join(parts)


def definitions(items: Iterable[tuple[str, Any]]) -> Markup:
    """`label: value` lines (a two-column table without a header)."""
    rows = []
    for label, value in items:
        cell = value if isinstance(value, Markup) else escape(text(value))
        rows.append(Markup("<tr><th>{}</th><td>{}</td></tr>").format(label, cell))
    return Markup('<table class="table is-narrow aexp-facts"><tbody>{}</tbody></table>').format(
        Markup("").join(rows)
    )


def note(message: str) -> Markup:
    return Markup('<p class="is-size-7 has-text-grey">{}</p>').format(message)


__all__ = ["definitions", "link", "note", "state_tag", "table", "text"]
