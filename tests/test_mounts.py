"""aexp.mounts: the file system type of a directory, from /proc/self/mountinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from aexp import mounts


def test_a_mount_point_with_an_escaped_space_and_non_ascii_letters_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mountinfo escapes the space (\\040) and writes the UTF-8 bytes of "é" as they are. Such a
    # line used to raise in the latin-1 round trip and be skipped: the NFS mount below then took
    # its parent's type (ext4), and the job lock flocked a directory on NFS.
    mount_point = tmp_path / "my données"
    (mount_point / "workspace").mkdir(parents=True)
    escaped = str(mount_point).replace(" ", "\\040")
    info = tmp_path / "mountinfo"
    info.write_text(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"2 1 0:5 / {escaped} rw,relatime shared:1 - nfs4 server:/export rw\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(mounts, "MOUNTINFO", str(info))
    assert mounts.fs_type(str(mount_point / "workspace")) == "nfs4"
    assert mounts._unescape("/a\\134b\\011c") == "/a\\b\tc"
