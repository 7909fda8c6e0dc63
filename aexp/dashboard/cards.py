"""The base of aexp's signac-dashboard modules: a card of HTML on a job's page or on the
project (sweep) page, with the dashboard's options (aexp.dashboard.data.Options).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from signac_dashboard.module import Module

from aexp.dashboard.data import Options


class AexpCard(Module):
    """A signac-dashboard module whose cards are aexp's HTML (`card`)."""

    _supported_contexts = {"JobContext", "ProjectContext"}
    context_name = "JobContext"

    def __init__(self, name: str, *, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, context=self.context_name, template="", **kwargs)
        self.options = options or Options()

    def card(self, content: Any) -> list[dict[str, Any]]:
        return [{"name": self.name, "content": Markup(content)}]


__all__ = ["AexpCard"]
