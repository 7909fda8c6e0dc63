"""W&B's limits on tags (1-64 characters) and groups (at most 128), at their boundaries: a name
that fits is kept to the letter, one character more is shortened to exactly the limit, the same
way every time (aexp.validate.shorten, applied by aexp.spec.spec_of)."""

from __future__ import annotations

import hashlib

import pytest

from aexp.spec import spec_of
from aexp.validate import GROUP_MAX, TAG_MAX, shorten


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


@pytest.mark.parametrize("limit", [TAG_MAX, GROUP_MAX])
@pytest.mark.parametrize("extra", [-1, 0, 1, 2, 100])
def test_shorten_keeps_what_fits_and_cuts_the_rest_to_exactly_the_limit(limit, extra) -> None:
    text = "c" * (limit + extra)
    short = shorten(text, limit)
    if extra <= 0:
        assert short == text
    else:
        assert len(short) == limit
        assert short == "c" * (limit - 9) + "~" + _digest(text)
        assert shorten(text, limit) == short  # deterministic


def test_limits_are_wandbs() -> None:
    assert (TAG_MAX, GROUP_MAX) == (64, 128)


@pytest.mark.parametrize(
    ("condition_length", "tag_kept"),
    [(1, True), (63, True), (64, True), (65, False), (66, False)],
)
def test_a_run_tag_at_the_tag_limit(condition_length: int, tag_kept: bool) -> None:
    condition = "x" * condition_length
    spec = spec_of({"hypothesis_id": "H1", "experiment_id": "E1", "condition": condition})
    tag = spec["tags"][2]
    assert len(tag) == min(condition_length, TAG_MAX)
    assert (tag == condition) is tag_kept
    if not tag_kept:
        assert tag == condition[:55] + "~" + _digest(condition)


@pytest.mark.parametrize(
    ("group_length", "group_kept"),
    [(127, True), (128, True), (129, False), (130, False)],
)
def test_a_run_group_at_the_group_limit(group_length: int, group_kept: bool) -> None:
    prefix = "H1/E1/"
    condition = "y" * (group_length - len(prefix))
    spec = spec_of({"hypothesis_id": "H1", "experiment_id": "E1", "condition": condition})
    full = prefix + condition
    assert len(spec["group"]) == min(group_length, GROUP_MAX)
    assert (spec["group"] == full) is group_kept
    if not group_kept:
        assert spec["group"] == full[:119] + "~" + _digest(full)
