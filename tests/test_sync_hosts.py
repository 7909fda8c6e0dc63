"""Whether this host may upload (aexp.sync.hosts): the answer wandb itself would give.

Every test runs in its own HOME (conftest's hermetic environment: ~/.netrc, ~/.config/wandb and
./wandb are the test's). The expected hosts come from the INSTALLED wandb
(`wandb.sdk.lib.urls.DEFAULT_BASE_URL`), never from a literal, and netrc files are written with
wandb's own writer, as `wandb login` writes them. No server is contacted: the one loopback server
below only proves that nothing asks it anything.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import NEEDS_WANDB, PYTHON, run_cmd
from wandb_server import FAKE_API_KEY, FakeWandbServer

from aexp.sync import can_sync_here, forget_sync_blocker, sync_blocker
from aexp.sync.hosts import INSTALL_HINT, app_url

pytestmark = NEEDS_WANDB

KEY = "k" * 40  # the shape of a W&B API key (40+ word characters)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No credentials, W&B's default server, and no answer remembered from another test."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    forget_sync_blocker()
    yield
    forget_sync_blocker()


def ask() -> str | None:
    """sync_blocker's answer now (the per-process answer forgotten first)."""
    forget_sync_blocker()
    return sync_blocker()


def default_url() -> str:
    from wandb.sdk.lib import urls

    return urls.DEFAULT_BASE_URL


def login(host: str, key: str = KEY) -> Path:
    """Write the netrc entry `wandb login --host <host>` writes, with wandb's own writer."""
    from wandb.sdk.lib import wbauth

    wbauth.write_netrc_auth(host=host, api_key=key)
    netrc = Path(os.environ["HOME"], ".netrc")
    assert netrc.is_file()
    return netrc


def netloc(url: str) -> str:
    return urlsplit(url).netloc


# -- credentials wandb finds --------------------------------------------------------------------
def test_a_login_for_the_default_host_of_the_installed_wandb_is_enough() -> None:
    netrc = login(default_url())
    assert f"machine {netloc(default_url())}" in netrc.read_text()
    assert ask() is None
    assert can_sync_here()


def test_an_entry_for_the_old_cloud_host_counts_exactly_when_wandb_counts_it() -> None:
    from wandb.sdk.lib import urls, wbauth

    netrc = Path(os.environ["HOME"], ".netrc")
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    netrc.chmod(0o600)
    wandb_finds_it = wbauth.read_netrc_auth(host=default_url()) is not None
    assert can_sync_here() is wandb_finds_it
    # wandb 0.31 falls back from a CoreWeave Forge host (its default) to the W&B host behind it,
    # which is where `wandb login` wrote the key before 0.31.
    if netloc(urls.forge_upstream_url(default_url())) == "api.wandb.ai":
        assert can_sync_here()


def test_without_credentials_the_reason_names_the_host_and_the_remedy() -> None:
    login("https://other.example.com")  # a netrc, but no entry for wandb's server
    reason = ask()
    assert reason is not None and not can_sync_here()
    assert default_url() in reason
    assert "wandb login" in reason and "WANDB_API_KEY" in reason


def test_without_any_source_of_credentials_the_reason_comes_without_importing_wandb(
    tmp_path: Path,
) -> None:
    # No key, no netrc, no settings file (the test's HOME is empty): `status` asks for every job
    # that waits for a sync, and must not pay for importing wandb to hear "no".
    out = check(tmp_path)
    assert out["wandb"] is False
    assert "no W&B credentials" in out["reason"] and "wandb login" in out["reason"]


def test_an_entry_for_another_host_or_without_a_key_is_not_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8080")
    netrc = login(default_url())
    assert ask() is not None, "an entry for another host"
    netrc.write_text("machine 127.0.0.1:8080 login user password\n")
    # (wandb's own warning, "Found entry ... with no API key", joins the reason only where
    # wandb's terminal output is not silenced: not asserted.)
    reason = ask()
    assert reason is not None and "http://127.0.0.1:8080" in reason, "an entry without a key"
    netrc.write_text("machine 127.0.0.1:8080 login user password short\n")
    reason = ask()
    assert reason is not None and "not a usable API key" in reason, "a key wandb refuses"


def test_the_netrc_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = login(default_url())
    monkeypatch.setenv("NETRC", str(tmp_path / "elsewhere"))
    assert ask() is not None
    monkeypatch.setenv("NETRC", str(netrc))
    assert ask() is None


def test_a_loopback_server_named_by_wandb_base_url_with_its_host_and_port_in_netrc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeWandbServer() as server:
        monkeypatch.setenv("WANDB_BASE_URL", server.base_url)
        login(default_url())
        reason = ask()
        assert reason is not None and server.base_url in reason, "the default host's entry"
        login(server.base_url)
        assert ask() is None
        assert server.requests == [], "answered without asking the server"


def test_the_server_wandb_login_host_stored_in_wandbs_settings_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Path(os.environ["WANDB_CONFIG_DIR"], "settings")
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("[default]\nbase_url = http://127.0.0.1:8123\n")
    login("http://127.0.0.1:8123")
    assert ask() is None
    settings.write_text("[default]\nbase_url = http://127.0.0.1:8124\n")
    reason = ask()
    assert reason is not None and "http://127.0.0.1:8124" in reason


def test_an_api_key_in_wandbs_settings_file() -> None:
    settings = Path(os.environ["WANDB_CONFIG_DIR"], "settings")
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(f"[default]\napi_key = {KEY}\n")
    assert ask() is None


def test_an_api_key_in_the_working_directorys_wandb_settings_file(tmp_path: Path) -> None:
    # wandb reads ./wandb/settings (its workspace settings file) too: the shortcut that answers
    # "no credentials" without importing wandb must not overlook it.
    settings = tmp_path / "wandb" / "settings"
    settings.parent.mkdir()
    settings.write_text(f"[default]\napi_key = {KEY}\n")
    assert check(tmp_path)["reason"] is None


def test_an_empty_api_key_is_not_counted_and_a_blank_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "")
    assert ask() is not None
    login(default_url())
    assert ask() is None, "an empty key does not hide the netrc entry"
    monkeypatch.setenv("WANDB_API_KEY", "   ")
    reason = ask()
    assert reason is not None and "WANDB_API_KEY" in reason


def test_an_api_key_or_identity_token_file_in_the_environment_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert ask() is None
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_IDENTITY_TOKEN_FILE", str(tmp_path / "token.jwt"))
    assert ask() is None


def test_inside_a_slurm_allocation_never_even_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    login(default_url())
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    reason = ask()
    assert reason is not None and "SLURM_JOB_ID=4242" in reason
    assert not can_sync_here()


def test_a_setting_wandb_refuses_is_a_reason_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login(default_url())
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.ai")  # the app's address, not the API's
    reason = ask()
    assert reason is not None and "base_url" in reason and "https://wandb.ai" in reason


def test_without_wandb_the_reason_is_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    login(default_url())
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    reason = ask()
    assert reason is not None and INSTALL_HINT in reason


def test_the_answer_is_kept_for_the_process_until_forgotten() -> None:
    netrc = login(default_url())
    assert sync_blocker() is None
    netrc.unlink()
    assert sync_blocker() is None, "asked wandb again"
    forget_sync_blocker()
    assert sync_blocker() is not None


# -- what is imported, what is touched ----------------------------------------------------------
CHECK = """
import json, sys
from aexp.sync import find_offline_runs, sync_blocker
reason = sync_blocker()
out = {"reason": reason, "wandb": "wandb" in sys.modules}
if out["wandb"]:
    from wandb.sdk import wandb_setup
    out["wandb_setup"] = wandb_setup._singleton is not None
print(json.dumps(out))
"""


def check(tmp_path: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "SLURM_JOB_ID")}
    return json.loads(run_cmd([PYTHON, "-c", CHECK], tmp_path, {**environ, **env}, 60, True).stdout)


def test_the_environment_answers_without_importing_wandb(tmp_path: Path) -> None:
    assert check(tmp_path, WANDB_API_KEY=FAKE_API_KEY) == {"reason": None, "wandb": False}
    slurm = check(tmp_path, WANDB_API_KEY=FAKE_API_KEY, SLURM_JOB_ID="17")
    assert slurm["wandb"] is False and "SLURM_JOB_ID=17" in slurm["reason"]


def test_asking_wandb_leaves_its_process_wide_setup_alone(tmp_path: Path) -> None:
    # A later wandb.init in the same process (project.py run) must set wandb up itself.
    login(default_url())
    assert check(tmp_path) == {"reason": None, "wandb": True, "wandb_setup": False}


# -- the web app's address ----------------------------------------------------------------------
def test_the_app_url_is_wandbs_own_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    from wandb.util import api_to_app_url

    assert app_url() == api_to_app_url(default_url())
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.example.com")
    assert app_url() == api_to_app_url("https://api.example.com")
    monkeypatch.setenv("WANDB_APP_URL", "https://app.example.org/")
    assert app_url() == "https://app.example.org"


def test_the_app_url_without_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.example.com/")
    assert app_url() == "https://example.com"
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8080")  # self-hosted: one address
    assert app_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("WANDB_APP_URL", "https://app.example.org/")
    assert app_url() == "https://app.example.org"


@pytest.mark.parametrize(
    ("fragments", "expected"),
    [
        # a synced run whose empty fragment was set aside is synced, not skipped
        (["already synced", "set aside"], "wandb: 1 already synced"),
        (["set aside", "already synced", "already synced"], "wandb: 1 already synced"),
        (["already synced"], "wandb: 1 already synced"),
        # a run with nothing but a set-aside fragment, or still executing, is skipped
        (["set aside"], "wandb: 1 skipped"),
        (["already synced", "still executing"], "wandb: 1 skipped"),
        (["uploaded", "set aside"], "wandb: 1 uploaded"),
    ],
)
def test_a_run_counts_once_by_its_fragments(fragments: list[str], expected: str) -> None:
    from aexp.sync.report import summarize
    from aexp.sync.result import ALREADY_SYNCED, SET_ASIDE, STILL_EXECUTING, SyncResult

    why = {"already synced": ALREADY_SYNCED, "set aside": SET_ASIDE, "uploaded": None}
    why["still executing"] = STILL_EXECUTING
    results = [
        SyncResult(f"f{i}", "job", "run", True, why[kind], None, "", "", 0.0)
        for i, kind in enumerate(fragments)
    ]
    assert summarize(results).line() == expected
