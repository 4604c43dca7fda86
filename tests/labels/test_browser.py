"""End to end in a real browser: JupyterLab, headless Chromium, the ranker, the JSONL file.

Starts ``jupyter lab`` from this Python's environment on a free localhost port, opens a small
notebook in Debian's Chromium driven by Playwright (``executable_path``: Playwright's own
browser downloads are not used), runs it, ranks K = 4 completions by clicking, submits, takes
the submission back ("undo submit"), corrects it, submits with a double click, and checks the
saved records: the ranking, its retraction and the correction, and nothing saved twice.
Skipped only when /usr/bin/chromium is missing outside CI.
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ORDER = [2, 0, 3, 1]        # the ranking the "person" clicks, best first
CORRECTED = [3, 1, 0, 2]    # and the ranking they correct it to after "undo submit"


def _require_browser():
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not Path(CHROMIUM).exists():
        if in_ci:
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); this test needs a real browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if in_ci:
            pytest.fail("playwright is missing: install the dev extra (pip install -e '.[dev]')")
        pytest.skip("playwright not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(folder: Path, store: Path) -> Path:
    code = f"""
import os
os.environ["RLHF_LAB_RUNS"] = {str(folder / "runs")!r}
from rlhf_lab.labels.preferences import LabelTask
from rlhf_lab.labels.ranker import Ranker
from rlhf_lab.world.reviews import ReviewWorld
texts = (" The plot is brilliant.", " The plot is dull.", " The plot is fine, but slow.", " I loved the plot.")
tasks = [LabelTask(p, texts, (0.0,) * 4, "tiny") for p in ReviewWorld(0).instruction_prompts(2)]
ranker = Ranker(tasks, {str(store)!r}, labeler="browser-test")
ranker
"""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(code.strip())]
    path = folder / "ranker.ipynb"
    nbformat.write(nb, path)
    return path


def _start_lab(folder: Path, port: int, token: str) -> subprocess.Popen:
    jupyter = Path(sys.executable).parent / "jupyter"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(folder / ".rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".ws"),
           # the "python3" kernel must be this environment's, not one in the user's ~/.local
           "JUPYTER_DATA_DIR": str(folder / ".data"), "JUPYTER_PREFER_ENV_PATH": "1"}
    cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(folder / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{(folder / 'lab.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    raise RuntimeError(f"jupyter lab did not answer within 60 s:\n{(folder / 'lab.log').read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started, and its kernels (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # kernels left in the group, if any
    except ProcessLookupError:
        pass


def _run_all_cells(page, expect) -> None:
    """Run > Run All Cells once the kernel is idle; the menu item does nothing while the
    notebook is still connecting, so try again until the cell shows it ran (or is running)."""
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()
    prompt = page.locator(".jp-Notebook .jp-InputArea-prompt").first
    for _ in range(5):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            expect(prompt).not_to_have_text("[ ]:", timeout=5_000)
            return
        except AssertionError:
            page.keyboard.press("Escape")
    raise AssertionError("JupyterLab did not run the notebook's cell")


def test_rank_in_jupyterlab_in_headless_chromium(tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=45_000)    # kernel start and first imports take seconds on 2 cores

    start = time.perf_counter()
    store = tmp_path / "labels" / "browser.jsonl"
    _write_notebook(tmp_path, store)
    port, token = _free_port(), secrets.token_hex(16)
    lab = _start_lab(tmp_path, port, token)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(45_000)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/ranker.ipynb?token={token}")
                _run_all_cells(page, expect)
                buttons = [page.locator(f"button.rlhf-rank-{k}") for k in range(4)]
                expect(buttons[0]).to_have_text("pick as #1")
                expect(page.locator(".widget-label", has_text="0 / 2 labeled")).to_have_count(1)
                for rank, k in enumerate(ORDER, 1):
                    buttons[k].click()
                    expect(buttons[k]).to_have_text(f"#{rank}")       # the rank shows on the completion
                submit = page.locator("button.rlhf-submit")
                expect(submit).to_be_enabled()
                submit.click()
                expect(page.get_by_text("saved C > A > D > B (1 / 2)")).to_be_visible()
                expect(buttons[0]).to_have_text("pick as #1")           # the next prompt is up
                page.wait_for_timeout(500)                              # past the double-click guard
                page.locator("button.rlhf-undo-submit").click()          # a mistake: take it back
                expect(page.get_by_text("took back ins-train-00000")).to_be_visible()
                for rank, k in enumerate(ORDER, 1):                     # the old ranking is back on screen
                    expect(buttons[k]).to_have_text(f"#{rank}")
                page.wait_for_timeout(500)
                page.locator("button.rlhf-reset").click()
                for rank, k in enumerate(CORRECTED, 1):
                    buttons[k].click()
                    expect(buttons[k]).to_have_text(f"#{rank}")
                submit.dblclick()                                       # a double click saves once
                expect(page.get_by_text("saved D > B > A > C (1 / 2)")).to_be_visible()
                expect(buttons[0]).to_have_text("pick as #1")
                page.wait_for_timeout(500)
            finally:
                browser.close()
    finally:
        _stop(lab)
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(records) == 3                    # the ranking, its retraction, the correction: nothing else
    assert records[0]["ranking"] == ORDER and records[0]["labeler"] == "browser-test"
    assert records[0]["prompt_id"] == "ins-train-00000" and records[0]["source"] == "human"
    assert records[1]["retracted"] and records[1]["ranking"] == ORDER
    assert records[2]["ranking"] == CORRECTED and not records[2]["retracted"]
    from rlhf_lab.labels.preferences import load_preferences
    assert [(r.prompt_id, r.ranking) for r in load_preferences(store)] == [("ins-train-00000", CORRECTED)]
    print(f"browser round trip in {time.perf_counter() - start:.1f} s")
