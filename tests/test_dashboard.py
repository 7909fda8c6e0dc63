"""The web dashboard (`python dashboard.py run`, aexp.dashboard) on a real project run by the
real workflow: first through Flask's test client (always), then in a real browser, Debian's
chromium driven by selenium, which logs in with the URL the dashboard prints, finds the jobs and
their states on the sweep's page, sorts the configurations and the runs by a click on a column,
checks that no number wraps, reads the inferred colours in the figure's legend, reads the job
list, and finds a rendered curve (an SVG path with the run's points, and the mark where its
preempted attempt ended) on a job's page. A screenshot of each page is kept in the test's temp
dir (the paths are printed: `pytest -s` shows them).

The browser test skips, saying why, where chromium, chromedriver or selenium are missing;
`.ci/run` installs them and sets AEXP_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PYTHON, copy_template, hermetic_env, run_cmd, set_rc

pytest.importorskip("signac_dashboard", reason="needs signac-dashboard (the [dashboard] extra)")
pytest.importorskip("matplotlib", reason="needs matplotlib (the [dashboard] extra)")

REQUIRE_BROWSER = os.environ.get("AEXP_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

PREEMPT = """
import sys, aexp
from aexp.lifecycle import Preempted, run_lifecycle
job = aexp.open_project().open_job(id=sys.argv[1])
try:
    with run_lifecycle(job) as tracker:
        for epoch in range(2):
            tracker.log({"loss": 2.0 - epoch, "accuracy": 0.1 * epoch, "epoch": epoch})
        raise Preempted(15)
except Preempted:
    pass
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A template project: 2 conditions x 2 seeds run to the end (noop backend), one of them
    preempted once and resumed, plus one job never run."""
    base = tmp_path_factory.mktemp("dashboard")
    root = copy_template(base / "project")  # dashboard.py included
    env = hermetic_env(base / "env")
    set_rc(root, "tracker", "backend", "noop")
    made = run_cmd(
        [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E018", "--hypothesis", "H012",
         "--sp", "condition=full|ablated,seed=0..1,epochs=4"],
        root, env, check=True,
    ).stdout.split()  # fmt: skip
    preempted = made[0]
    run_cmd([PYTHON, "-m", "aexp.cli", "bind-tracker", preempted], root, env, check=True)
    run_cmd([PYTHON, "-c", PREEMPT, preempted], root, env, check=True)
    run_cmd([PYTHON, "project.py", "run"], root, env, check=True)
    waiting = run_cmd(
        [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E018", "--hypothesis", "H012",
         "--sp", "condition=full,seed=9"],
        root, env, check=True,
    ).stdout.split()[0]  # fmt: skip
    states = {}
    for job_id in (*made, waiting):
        doc = json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())
        states[job_id] = doc.get("tracker", {}).get("state", "unbound")
    assert states[preempted] == "finished" and states[waiting] == "unbound"
    return SimpleNamespace(
        root=root, env=env, jobs=made, preempted=preempted, waiting=waiting, states=states
    )


def test_pages_and_figures_through_the_test_client(site: SimpleNamespace) -> None:
    from aexp.dashboard import make_dashboard

    dashboard = make_dashboard(root=site.root, metrics=["loss"], by="condition")
    client = dashboard.app.test_client()
    refused = client.get("/project/")
    assert refused.status_code == 401 and b"aexp-runs" not in refused.data  # the login page
    token = dashboard.config["ACCESS_TOKEN"]
    assert client.get(f"/login?token={token}").status_code == 302
    page = client.get("/project/").get_data(as_text=True)
    rows = dict(re.findall(r'data-job="([0-9a-f]{32})" data-state="(\w+)"', page))
    assert rows == site.states
    assert f"{len(site.states)} jobs" in page
    src = re.search(r'id="aexp-sweep-plot" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "metric=loss" in src and "by=condition" in src
    svg = client.get(src)
    assert svg.mimetype == "image/svg+xml"
    drawn = set(re.findall(r'<g id="curve:([0-9a-f]{32})"', svg.get_data(as_text=True)))
    assert drawn == set(site.jobs)  # one curve per job that ran; none for the unbound one
    # Filters are the command line's: where, state
    some = client.get("/project/?where=condition%3Dfull,seed%3D0..1&state=finished").get_data(
        as_text=True
    )
    assert len(re.findall(r'data-job="', some)) == 2
    job = client.get(f"/jobs/{site.preempted}").get_data(as_text=True)
    assert 'id="aexp-attempts-' in job and "preempted" in job
    assert f'id="preempted:{site.preempted}:loss"' in job  # inline on the job's own page
    # Pages of many jobs load each job's curves as an image when it scrolls into view.
    grid = client.get("/jobs/?view=grid").get_data(as_text=True)
    images = re.findall(r'class="aexp-curves-image" loading="lazy" src="([^"]+)"', grid)
    assert len(images) == len(site.states)
    curves = client.get(f"/aexp/jobs/{site.preempted}/curves.svg")
    assert curves.mimetype == "image/svg+xml"
    assert f'id="curve:{site.preempted}:loss"' in curves.get_data(as_text=True)
    assert client.get("/aexp/jobs/" + "f" * 32 + "/curves.svg").status_code == 404


def _statepoint(site: SimpleNamespace, job_id: str) -> dict:
    return json.loads((site.root / "workspace" / job_id / "signac_statepoint.json").read_text())


def _login(root: Path, **options):
    from aexp.dashboard import make_dashboard

    dashboard = make_dashboard(root=root, **options)
    client = dashboard.app.test_client()
    assert client.get(f"/login?token={dashboard.config['ACCESS_TOKEN']}").status_code == 302
    return client


def _jobs_shown(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-job="([0-9a-f]{32})" data-state="(\w+)"', page))


def test_the_state_filter_selects_the_jobs_in_that_state(site: SimpleNamespace) -> None:
    client = _login(site.root)
    full = {j: s for j, s in site.states.items() if _statepoint(site, j)["condition"] == "full"}
    page = client.get("/project/?where=condition%3Dfull").get_data(as_text=True)
    assert _jobs_shown(page) == full and sorted(full.values()) == [
        "finished",
        "finished",
        "unbound",
    ]
    finished = client.get("/project/?where=condition%3Dfull&state=finished").get_data(as_text=True)
    assert _jobs_shown(finished) == {j: s for j, s in full.items() if s == "finished"}
    assert "2 jobs (condition=full, finished)" in finished
    waiting = client.get("/project/?state=unbound").get_data(as_text=True)
    assert _jobs_shown(waiting) == {site.waiting: "unbound"}
    # The figure of a filtered page draws that page's jobs only.
    src = re.search(r'id="aexp-sweep-plot" src="([^"]+)"', finished).group(1).replace("&amp;", "&")
    assert "state=finished" in src
    drawn = set(re.findall(r'<g id="curve:([0-9a-f]{32})"', client.get(src).get_data(as_text=True)))
    assert drawn == {j for j, s in full.items() if s == "finished"}


def test_defaults_come_from_the_sweep_and_from_signac_rc(site, tmp_path: Path) -> None:
    client = _login(site.root)  # nothing configured: everything inferred from the sweep
    page = client.get("/project/").get_data(as_text=True)
    (metrics,) = re.findall(r'<select name="metric">(.*?)</select>', page, re.S)
    assert re.findall(r'<option value="(\w+)"', metrics) == ["epoch", "loss", "accuracy"]
    assert '<option value="loss" selected>' in metrics  # the first metric with fractions
    src = re.search(r'id="aexp-sweep-plot" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "metric=loss" in src and "by=condition" in src  # the first key that varies
    svg = client.get(src).get_data(as_text=True)
    legend = re.findall(r"<text[^>]*>([^<]*condition=[^<]*)</text>", svg)
    assert [t.strip() for t in legend] == ["condition=ablated (2 jobs)", "condition=full (2 jobs)"]
    # The configurations over seeds: condition and epochs (the waiting job has no epochs).
    groups = page[page.index('id="aexp-groups"') : page.index('id="aexp-runs"')]
    rows = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", groups)
    counts = [
        (name, re.findall(r'data-value="([^"]+)"', rest)[:4]) for name, rest in rows
    ]  # epochs, runs, finished, failed (the waiting job's epochs is missing)
    assert counts == [
        ("ablated", ["4", "2", "2", "0"]), ("full", ["4", "2", "2", "0"]),
        ("full", ["1", "0", "0", "0"]),
    ]  # fmt: skip
    # The job list names each job by what tells it apart, its state and a metric.
    jobs = client.get("/jobs/").get_data(as_text=True)
    titles = re.findall(r'<li>\s*<a href="/jobs/([0-9a-f]{32})">([^<]+)</a>', jobs)
    assert len(titles) == len(site.states)
    for job_id, title in titles:
        assert f"· {job_id[:8]}" in title and site.states[job_id] in title
        assert title.startswith("condition=") and " seed=" in title
    done = dict(titles)[site.preempted]
    assert re.search(r"finished · loss=0\.\d+ ·", done)
    # signac.rc's [dashboard] wins over what is inferred.
    root = tmp_path / "configured"
    shutil.copytree(site.root, root, symlinks=True)
    set_rc(root, "dashboard", "metrics", "accuracy")
    set_rc(root, "dashboard", "colour_by", "seed")
    set_rc(root, "dashboard", "band", "ci")
    page = _login(root).get("/project/").get_data(as_text=True)
    src = re.search(r'id="aexp-sweep-plot" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "metric=accuracy" in src and "by=seed" in src and "band=ci" in src


def test_without_signac_dashboard_one_sentence_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import importlib.util

    import aexp.dashboard

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "signac_dashboard" else real(name),
    )
    assert aexp.dashboard.launch(["run"]) == 2
    assert capsys.readouterr().err == (
        "error: the dashboard needs signac-dashboard; install them with: "
        "pip install 'agentic-experiments[dashboard]'\n"
    )


def _journal(site: SimpleNamespace, job_id: str):
    from aexp.journal import read_journal

    job = site.root / "workspace" / job_id
    run_id = json.loads((job / "signac_job_document.json").read_text())["tracker"]["run_id"]
    return read_journal(job / "tracker_log" / run_id / "events.jsonl")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _browser_or_skip():
    why = None
    if CHROMIUM is None or CHROMEDRIVER is None:
        why = (
            "no chromium/chromedriver on this machine (Debian: apt-get install -y "
            "--no-install-recommends chromium chromium-driver)"
        )
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            why = "selenium is not installed (pip install selenium)"
    if why:
        if REQUIRE_BROWSER:
            pytest.fail(f"{why}, but AEXP_REQUIRE_BROWSER=1")
        pytest.skip(why)


def test_in_a_real_browser(site: SimpleNamespace, tmp_path: Path) -> None:
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    server = subprocess.Popen(
        [PYTHON, "dashboard.py", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=site.root,
        env=site.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    driver = None
    try:
        login = None
        deadline = time.monotonic() + 60
        while login is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line or server.poll() is None, "the dashboard exited"
            found = re.search(r"(http://\S+/login\?token=[0-9a-f]+)", line)
            login = found.group(1) if found else None
        assert login, "the dashboard never printed its login URL"
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1400,1600",
        ):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, 30)

        driver.get(login)  # logs in, then lands on the sweep's page
        wait.until(lambda d: d.find_elements(By.ID, "aexp-runs"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#aexp-runs tr[data-job]")
        shown = {r.get_attribute("data-job"): r.get_attribute("data-state") for r in rows}
        assert shown == site.states
        for row in rows:  # the state is on screen, not only in an attribute
            tag = row.find_element(By.CSS_SELECTOR, ".aexp-state")
            assert tag.text == row.get_attribute("data-state") and tag.is_displayed()
        plot = driver.find_element(By.ID, "aexp-sweep-plot")
        wait.until(lambda d: d.execute_script("return arguments[0].complete", plot))
        assert driver.execute_script("return arguments[0].naturalWidth", plot) > 100
        shot = tmp_path / "dashboard-sweep.png"
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot: {shot}")

        # The configurations over seeds sort by a click on a column: numbers as numbers,
        # configurations without a value last either way; a second click, the other way.
        def column(table: str, index: int) -> list:
            return driver.execute_script(
                "var i = arguments[1];"
                "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
                ".map(function (r) { return r.cells[i].getAttribute('data-value'); })",
                table,
                index,
            )

        headers = driver.find_elements(By.CSS_SELECTOR, "#aexp-groups th")
        mean = [h.text for h in headers].index("loss mean")
        headers[mean].click()
        assert headers[mean].get_attribute("aria-sort") == "ascending"
        up = column("#aexp-groups", mean)
        assert up[-1] is None and [float(v) for v in up[:-1]] == sorted(float(v) for v in up[:-1])
        headers[mean].click()
        assert headers[mean].get_attribute("aria-sort") == "descending"
        down = column("#aexp-groups", mean)
        assert down[-1] is None and down[:-1] == up[:-1][::-1]
        # The runs table too: by seed, as numbers (9 after 1, not before it as text would).
        headers = driver.find_elements(By.CSS_SELECTOR, "#aexp-runs th")
        seed = [h.text for h in headers].index("seed")
        headers[seed].click()
        assert [float(v) for v in column("#aexp-runs", seed)] == [0, 0, 1, 1, 9]
        # No number wraps, however narrow the window: every cell's text is on one line.
        driver.set_window_size(700, 1600)
        wrapped = driver.execute_script(  # a text split over lines has rects at two heights
            "var cells = document.querySelectorAll('#aexp-runs td, #aexp-groups td');"
            "return Array.from(cells).filter(function (td) {"
            "  var walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT), node, split = false;"
            "  while ((node = walk.nextNode())) {"
            "    var range = document.createRange(); range.selectNodeContents(node);"
            "    var tops = {};"
            "    Array.from(range.getClientRects()).forEach(function (r) {"
            "      if (r.width > 0) { tops[Math.round(r.top)] = true; } });"
            "    split = split || Object.keys(tops).length > 1; }"
            "  return split; }).map(function (td) { return td.textContent; })"
        )
        assert wrapped == []
        assert driver.find_elements(By.CSS_SELECTOR, "#aexp-groups td.aexp-num")
        driver.set_window_size(1400, 1600)
        shot = tmp_path / "dashboard-sorted.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")

        # The colours were inferred (nothing configured): by condition, named in the legend.
        base = login.split("/login")[0]
        driver.get(plot.get_attribute("src"))
        texts = [
            t.text.strip()
            for t in driver.find_elements(By.XPATH, "//*[local-name()='text']")
            if "condition=" in t.text
        ]
        assert texts == ["condition=ablated (2 jobs)", "condition=full (2 jobs)"]
        # The job list names jobs by their parameters, state and a metric, not bare ids.
        driver.get(base + "/jobs/")
        links = driver.find_elements(By.CSS_SELECTOR, ".panel-block li a")
        titles = {a.get_attribute("href").rsplit("/", 1)[1]: a.text for a in links}
        assert set(titles) == set(site.states)
        for job_id, title in titles.items():
            assert title.startswith("condition=") and f"{site.states[job_id]} · " in title
            assert title.endswith(job_id[:8])

        driver.get(base + f"/jobs/{site.preempted}")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".aexp-curves svg"))
        state = driver.find_element(By.CSS_SELECTOR, ".aexp-facts .aexp-state")
        assert state.text == "finished"
        attempts = driver.find_elements(
            By.CSS_SELECTOR, f"#aexp-attempts-{site.preempted} tbody tr"
        )
        assert [r.find_elements(By.TAG_NAME, "td")[5].text for r in attempts] == [
            "preempted",
            "finished",
        ]
        curve = driver.find_element(By.ID, f"curve:{site.preempted}:loss")
        path = curve.find_element(By.TAG_NAME, "path")
        assert path.is_displayed()
        # matplotlib draws a line of N points as "M x y L x y ..." (N - 1 segments): N is the
        # number of rows with a loss in the run's journal (both attempts).
        points = len(_journal(site, site.preempted).metric("loss"))
        # Steps 0-1 before the preemption; the template logs its epoch as the step, so the 4
        # epochs done again from scratch add steps 2-3 only (0-1 are kept as re-done rows).
        assert points == 4
        assert path.get_attribute("d").count("L") == points - 1
        size = driver.execute_script("return arguments[0].getBBox().width", path)
        assert size > 100
        assert driver.find_elements(By.ID, f"preempted:{site.preempted}:loss")
        shot = tmp_path / "dashboard-job.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_dashboard_script_without_a_project_says_so(tmp_path: Path) -> None:
    shutil.copy2(Path(__file__).resolve().parents[1] / "dashboard.py", tmp_path / "dashboard.py")
    result = run_cmd([PYTHON, "dashboard.py", "run"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no signac project at or above")
