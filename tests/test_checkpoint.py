"""Checkpoints survive an interrupted write: the newest intact slot wins (aexp/checkpoint.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aexp.checkpoint import SLOTS, CheckpointDamaged, read_checkpoint, write_checkpoint


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


def test_checkpoints_alternate_between_slots_and_the_newest_wins(job_dir: Path) -> None:
    assert read_checkpoint(job_dir) is None
    for seq in range(5):
        write_checkpoint(job_dir, seq, step=10 * seq, state={"epoch": seq})
        newest = read_checkpoint(job_dir)
        assert (newest.seq, newest.step, newest.state) == (seq, 10 * seq, {"epoch": seq})
    assert sorted(p.name for p in job_dir.iterdir()) == sorted(SLOTS)
    # Each slot is plain JSON a person can read.
    assert json.loads((job_dir / SLOTS[0]).read_text())["state"] == {"epoch": 4}
    assert json.loads((job_dir / SLOTS[1]).read_text())["state"] == {"epoch": 3}


def test_a_shorter_checkpoint_over_a_longer_one_leaves_no_stale_bytes(job_dir: Path) -> None:
    write_checkpoint(job_dir, 0, step=0, state={"weights": list(range(200))})
    write_checkpoint(job_dir, 1, step=1, state={})
    write_checkpoint(job_dir, 2, step=2, state={"weights": []})
    assert read_checkpoint(job_dir).state == {"weights": []}
    assert json.loads((job_dir / SLOTS[0]).read_text())["seq"] == 2


def test_a_write_killed_before_its_truncate_falls_back_to_the_previous(job_dir: Path) -> None:
    write_checkpoint(job_dir, 0, step=0, state={"epoch": 0, "notes": "x" * 100})
    write_checkpoint(job_dir, 1, step=1, state={"epoch": 1})
    # Checkpoint 2 goes to slot 0 over the longer checkpoint 0; the process dies after the
    # write and before the truncate: the new text is followed by the old text's tail.
    slot = job_dir / SLOTS[0]
    old = slot.read_bytes()
    scratch = job_dir / "scratch"
    scratch.mkdir()
    write_checkpoint(scratch, 2, step=2, state={"epoch": 2})
    new = (scratch / SLOTS[0]).read_bytes()
    assert len(new) < len(old)
    slot.write_bytes(new + old[len(new) :])
    assert read_checkpoint(job_dir).state == {"epoch": 1}


def test_a_slot_torn_inside_the_state_is_caught_by_its_crc(job_dir: Path) -> None:
    write_checkpoint(job_dir, 0, step=0, state={"lr": 0.5})
    write_checkpoint(job_dir, 1, step=1, state={"lr": 0.25})
    slot = job_dir / SLOTS[1]
    # A power loss can mix pages of two versions into a file that still parses.
    slot.write_bytes(slot.read_bytes().replace(b"0.25", b"0.75"))
    assert json.loads(slot.read_text())["state"] == {"lr": 0.75}, "still valid JSON"
    assert read_checkpoint(job_dir).state == {"lr": 0.5}


def test_no_intact_slot_is_an_error_distinct_from_no_checkpoint(job_dir: Path) -> None:
    (job_dir / SLOTS[0]).write_text("")
    (job_dir / SLOTS[1]).write_text('{"seq": 1, "step": 0, "crc32": 0, "state": {}}')
    with pytest.raises(CheckpointDamaged, match="no intact checkpoint"):
        read_checkpoint(job_dir)


def test_a_state_that_is_not_json_writes_nothing(job_dir: Path) -> None:
    write_checkpoint(job_dir, 0, step=0, state={"epoch": 1})
    before = {p.name: p.read_bytes() for p in job_dir.iterdir()}
    with pytest.raises(TypeError):
        write_checkpoint(job_dir, 1, step=1, state={"model": object()})
    assert {p.name: p.read_bytes() for p in job_dir.iterdir()} == before
