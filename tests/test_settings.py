"""`signac.rc`, the template's own settings, and their environment overrides."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

from aexp import Settings, SettingsError, load_settings
from aexp.settings import _ENV, SlurmSettings


def write_rc(root: Path, text: str) -> Path:
    path = root / "signac.rc"
    path.write_text(textwrap.dedent(text))
    return path


def test_no_file_means_defaults(tmp_path):
    settings = load_settings(tmp_path)
    assert settings == Settings(path=None)
    assert (settings.backend, settings.project, settings.entity) == ("noop", "aexp", None)
    assert settings.offline is True and settings.tags == ()
    assert (settings.heartbeat_interval, settings.stale_after) == (30.0, 300.0)
    assert (settings.sync_workers, settings.sync_timeout) == (4, 600.0)
    assert settings.artifacts == () and settings.slurm == SlurmSettings()
    assert (settings.slurm.warning_signal, settings.slurm.warning_seconds) == ("USR1", 120)
    assert settings.slurm.requeue is True


def test_the_templates_own_signac_rc_is_valid():
    settings = load_settings(REPO)
    assert settings.path == REPO / "signac.rc"
    assert settings.backend == "wandb"
    assert settings.project == "aexp-demo"
    assert settings.entity is None  # `entity =` (empty): the user's default entity
    assert settings.offline is True
    assert settings.tags == ("template",)
    assert settings.artifacts == ("result.json",)
    assert settings.slurm.warning_signal == "USR1" and settings.slurm.requeue is True


def test_every_key_is_read_from_the_file(tmp_path):
    path = write_rc(
        tmp_path,
        """
        # comments and inline comments are allowed
        [tracker]
        backend = wandb   ; the W&B backend
        project = my-sweep
        entity = my-team
        offline = no
        tags = a, b  c
        [workflow]
        heartbeat_interval = 2.5
        stale_after = 60
        artifacts = result.json model.pt
        [sync]
        workers = 8
        timeout = 30
        [slurm]
        partition = gpu
        requeue = false
        """,
    )
    settings = load_settings(tmp_path)
    assert settings == Settings(
        path=path,
        backend="wandb",
        backends=("wandb",),
        project="my-sweep",
        entity="my-team",
        offline=False,
        tags=("a", "b", "c"),
        heartbeat_interval=2.5,
        stale_after=60.0,
        artifacts=("result.json", "model.pt"),
        sync_workers=8,
        sync_timeout=30.0,
        slurm=SlurmSettings(partition="gpu", requeue=False),
    )


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("AEXP_BACKEND", "noop", "backend", "noop"),
        ("AEXP_PROJECT", "from-env", "project", "from-env"),
        ("AEXP_ENTITY", "env-team", "entity", "env-team"),
        ("AEXP_ENTITY", "", "entity", None),
        ("AEXP_OFFLINE", "false", "offline", False),
        ("AEXP_TAGS", "x,y", "tags", ("x", "y")),
        ("AEXP_HEARTBEAT", "5", "heartbeat_interval", 5.0),
        ("AEXP_STALE_AFTER", "7.5", "stale_after", 7.5),
        ("AEXP_SYNC_WORKERS", "2", "sync_workers", 2),
        ("AEXP_SYNC_TIMEOUT", "90", "sync_timeout", 90.0),
    ],
)
def test_environment_overrides_the_file(
    tmp_path, monkeypatch, variable, value, attribute, expected
):
    write_rc(
        tmp_path,
        """
        [tracker]
        backend = wandb
        project = from-file
        entity = file-team
        offline = true
        tags = file
        [workflow]
        heartbeat_interval = 30
        stale_after = 300
        [sync]
        workers = 4
        timeout = 600
        """,
    )
    from_file = load_settings(tmp_path)
    monkeypatch.setenv(variable, value)
    overridden = load_settings(tmp_path)
    assert getattr(overridden, attribute) == expected
    assert getattr(from_file, attribute) != expected
    # Only that one setting changed.
    changed = {k for k, v in vars(overridden).items() if v != getattr(from_file, k)}
    # `backend` is the first of `backends`: the two change together.
    assert changed - {"backends"} == {attribute} if attribute == "backend" else {attribute}


def test_every_environment_variable_is_documented():
    documented = (REPO / "docs" / "settings.md").read_text()
    for (section, key), variable in _ENV.items():
        assert variable in documented, variable
        assert f"[{section}]" in documented and key in documented


# -- malformed settings: one clear error naming the key and the file -----------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[tracker\nbackend = noop\n", r"is not a valid INI file"),
        ("[tracker]\nbackend = noop\nbackend = wandb\n", r"is not a valid INI file.*'backend'"),
        ("[tracker]\noffline = maybe\n", r"\[tracker\] offline in .*must be true or false"),
        ("[tracker]\nbackend = wandbb\n", r"\[tracker\] backend in .*unknown.*'wandbb'.*noop"),
        ("[tracker]\nofline = false\n", r"\[tracker\] ofline in .* is not a setting"),
        ("project = x\n[tracker]\nbackend = noop\n", r"line 1: top-level key 'project'.*legacy"),
        ("# ok\n\nentity: t\n[tracker]\n", r"line 3: top-level key 'entity'"),
        ("[DEFAULT]\nproject = x\n", r"top-level 'project' key"),
        ("[tracker]\nproject = team/sweep\n", r"\[tracker\] project in .*'team/sweep'"),
        ("[tracker]\nproject = a:b\n", r"\[tracker\] project in .*not a valid"),
        ("[workflow]\nheartbeat_interval = soon\n", r"\[workflow\] heartbeat_interval in .*number"),
        ("[workflow]\nstale_after = 0\n", r"\[workflow\] stale_after in .*positive"),
        ("[workflow]\nstale_after = nan\n", r"\[workflow\] stale_after in .*number"),
        ("[sync]\nworkers = 2.5\n", r"\[sync\] workers in .*whole number"),
        ("[sync]\ntimeout = -1\n", r"\[sync\] timeout in .*positive"),
    ],
)
def test_malformed_file_names_the_key_and_the_file(tmp_path, text, expected):
    path = write_rc(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path)
    message = str(info.value)
    assert re.search(expected, message), message
    assert str(path) in message
    assert "\n" not in message  # one sentence


def test_unreadable_file(tmp_path):
    (tmp_path / "signac.rc").write_bytes(b"[tracker]\nproject = \xff\xfe\n")
    with pytest.raises(SettingsError, match=re.escape(str(tmp_path / "signac.rc"))):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AEXP_OFFLINE", "perhaps", "AEXP_OFFLINE must be true or false"),
        ("AEXP_BACKEND", "mlfow", "AEXP_BACKEND names an unknown tracker backend 'mlfow'"),
        ("AEXP_PROJECT", "a/b", "AEXP_PROJECT 'a/b' is not a valid tracker project name"),
        ("AEXP_SYNC_WORKERS", "many", "AEXP_SYNC_WORKERS must be a whole number"),
        ("AEXP_HEARTBEAT", "inf", "AEXP_HEARTBEAT must be a number"),
    ],
)
def test_malformed_environment_names_the_variable(tmp_path, monkeypatch, variable, value, expected):
    write_rc(tmp_path, "[tracker]\nbackend = noop\n")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=re.escape(expected)):
        load_settings(tmp_path)


def test_a_valid_signac_rc_does_not_disturb_signac(tmp_path):
    """signac never reads our file once .signac/config exists; the project opens normally."""
    import signac

    signac.init_project(tmp_path)
    write_rc(tmp_path, (REPO / "signac.rc").read_text())
    project = signac.get_project(tmp_path)
    assert Path(project.path) == tmp_path
    assert load_settings(tmp_path).backend == "wandb"


def test_the_slurm_section_is_typed(tmp_path):
    write_rc(
        tmp_path,
        """
        [slurm]
        partition = gpu-short
        account = proj42
        warning_signal = SIGUSR2
        warning_seconds = 300
        requeue = off
        """,
    )
    assert load_settings(tmp_path).slurm == SlurmSettings(
        partition="gpu-short",
        account="proj42",
        warning_signal="USR2",
        warning_seconds=300,
        requeue=False,
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("warning_signal", "HUP", "must be one of TERM, USR1, USR2, not 'HUP'"),
        ("warning_seconds", "soon", "must be a whole number"),
        ("warning_seconds", "70000", "must be at most 65535"),
        ("requeue", "maybe", "must be true or false"),
    ],
)
def test_a_bad_slurm_setting_names_key_and_file(tmp_path, key, value, message):
    path = write_rc(tmp_path, f"[slurm]\n{key} = {value}\n")
    with pytest.raises(SettingsError) as error:
        load_settings(tmp_path)
    assert f"[slurm] {key} in {path}" in str(error.value) and message in str(error.value)
