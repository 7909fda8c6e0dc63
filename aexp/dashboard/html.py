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


# On every page with a table: cells never wrap (a number split over two lines reads as two
# numbers), numbers line up, and a click on a sortable table's header sorts its rows (again: the
# other way). Each cell's `data-value` is what it sorts by: numbers as numbers, missing last.
_ASSETS = Markup("""<style>
.aexp-table td, .aexp-table th { white-space: nowrap; word-break: normal; overflow-wrap: normal; }
.aexp-table td.aexp-num { text-align: right; font-variant-numeric: tabular-nums; }
.aexp-table th.aexp-sortable { cursor: pointer; user-select: none; }
.aexp-table th[aria-sort="ascending"]::after { content: " \\25B2"; }
.aexp-table th[aria-sort="descending"]::after { content: " \\25BC"; }
</style>
<script>
window.aexpSort = window.aexpSort || function (th) {
  var table = th.closest("table"), body = table.tBodies[0], column = th.cellIndex;
  var up = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", up ? "ascending" : "descending");
  function value(row) {
    var cell = row.cells[column];
    var text = cell.getAttribute("data-value");
    text = text === null ? cell.textContent.trim() : text;
    if (text === "" || text === "-") { return null; }
    return cell.classList.contains("aexp-num") ? parseFloat(text) : text;
  }
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = value(a), y = value(b);
    if (x === null || y === null) { return (x === null) - (y === null); }
    if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
    var order = x < y ? -1 : (x > y ? 1 : 0);
    return up ? order : -order;
  });
  rows.forEach(function (row) { body.appendChild(row); });
};
</script>""")


def page_assets() -> Markup:
    """The tables' style and sorting script, for every card that shows a table (a page may
    show any of them: signac-dashboard lets the user switch cards off; the script defines its
    function once, however often it comes)."""
    return _ASSETS


def state_tag(state: str) -> Markup:
    css = _STATE_CLASS.get(state, "is-light")
    return Markup('<span class="tag {} aexp-state">{}</span>').format(css, state)


def link(url: str | None, label: str, *, external: bool = True) -> Markup:
    if not url:
        return Markup(escape(label))
    if external:
        return Markup('<a href="{}" target="_blank" rel="noopener">{}</a>').format(url, label)
    return Markup('<a href="{}">{}</a>').format(url, label)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cell(value: Any, sort_value: Any = None) -> Markup:
    """One <td>: a value as `text` writes it (numbers right-aligned, never wrapped), or Markup
    as it is; `sort_value` (default: the value itself, when a number) is what a sort reads."""
    sort_value = value if sort_value is None and _number(value) else sort_value
    attrs = Markup("")
    if _number(sort_value) and (not isinstance(sort_value, float) or math.isfinite(sort_value)):
        attrs = Markup(' class="aexp-num" data-value="{}"').format(repr(sort_value))
    elif sort_value is not None:
        attrs = Markup(' data-value="{}"').format(text(sort_value))
    shown = value if isinstance(value, Markup) else text(value)
    return Markup("<td{}>{}</td>").format(attrs, shown)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    table_id: str | None = None,
    row_attrs: Iterable[Mapping[str, str]] | None = None,
    sortable: bool = False,
) -> Markup:
    """A Bulma table; cells may be Markup (kept; a `cell` stays as it is) or values (escaped
    via `text`). `sortable`: a click on a header sorts the rows by that column."""
    attrs_iter = iter(row_attrs) if row_attrs is not None else None
    parts = [
        Markup(
            '<div class="table-container"><table class="table is-narrow is-hoverable aexp-table"'
        )
        + (Markup(' id="{}"').format(table_id) if table_id else Markup(""))
        + Markup(">")
    ]
    parts.append(Markup("<thead><tr>"))
    th = (
        Markup('<th class="aexp-sortable" onclick="aexpSort(this)">{}</th>')
        if sortable
        else Markup("<th>{}</th>")
    )
    parts.extend(th.format(h) for h in header)
    parts.append(Markup("</tr></thead><tbody>"))
    for row in rows:
        attrs = next(attrs_iter) if attrs_iter is not None else {}
        parts.append(
            Markup("<tr")
            + Markup("").join(Markup(' {}="{}"').format(k, v) for k, v in attrs.items())
            + Markup(">")
        )
        for value in row:
            if isinstance(value, Markup) and value.startswith("<td"):
                parts.append(value)
            else:
                parts.append(cell(value))
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


__all__ = [
    "cell",
    "definitions",
    "link",
    "note",
    "page_assets",
    "state_tag",
    "table",
    "text",
]
