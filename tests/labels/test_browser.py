"""End to end in a real browser: JupyterLab, headless Chromium, the ranker, the JSONL file.

Starts ``jupyter lab`` from this Python's environment on a free localhost port, opens a small
notebook in Debian's Chromium driven by Playwright (``executable_path``: Playwright's own
browser downloads are not used) at 1024 x 768, runs it, and then, as a student would:

* ranks K = 4 completions by clicking, submits, takes the submission back ("undo submit"),
  corrects it, submits with a double click;
* restarts the kernel: the old form, clicked, says its kernel is gone; the ranker cell run alone
  (it imports what it needs and reads its set from disk) shows the same completions again;
* ranks the next prompt with keys (letters, Enter; Z takes it back, Enter saves it again), and no
  key reaches JupyterLab's notebook shortcuts (the number of cells stays 2);
* reads the text colours against their backgrounds in the light and the dark theme (WCAG contrast
  of at least 4.5) and that "undo submit" is not cut off.

Then it checks the saved records: each ranking, retraction and correction, nothing saved twice.
With ``RLHF_LAB_SCREENSHOT=<file.png>`` it also saves a picture of the form mid-ranking
(`make screenshot` puts it in notebook 02). Skipped only when /usr/bin/chromium is missing outside CI.
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


def _write_notebook(folder: Path, labels: Path) -> Path:
    setup = f"""
from rlhf_lab.labels.label_sets import as_label_set, write_label_set
from rlhf_lab.labels.preferences import LabelTask
from rlhf_lab.world.reviews import ReviewWorld
texts = ((" The plot is brilliant.", " The plot is dull.", " The plot is fine, but slow.", " I loved the plot."),
         (" A dull cast.", " The cast is superb.", " The cast is fine.", " I did not like the cast at all."))
tasks = [LabelTask(p, t, (0.0,) * 4, "tiny") for p, t in zip(ReviewWorld(0).instruction_prompts(2), texts)]
write_label_set(as_label_set(tasks, "browser", 4, 0.7, 16, 0), {str(folder / "set.jsonl")!r}, overwrite=True)
"""
    ranker = f"""
from rlhf_lab.labels.ranker import Ranker   # this cell runs on its own: after a restart, run it alone
ranker = Ranker.from_set({str(folder / "set.jsonl")!r}, "browser-test", folder={str(labels)!r})
ranker
"""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(setup.strip()), nbformat.v4.new_code_cell(ranker.strip())]
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
    notices = folder / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notices.parent.mkdir(parents=True, exist_ok=True)
    notices.write_text('{"fetchNews": "false", "checkForUpdates": false}')   # no "Jupyter news?" toast over the form
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


CONTRAST = """el => {
  const ctx = document.createElement("canvas").getContext("2d", {willReadFrequently: true});
  const rgba = c => {   // any CSS colour (rgb(), color(srgb ...) from color-mix) as [r, g, b, a], via a canvas pixel
    ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = "rgba(0, 0, 0, 0)"; ctx.fillStyle = c; ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data; return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, bottom) => top.slice(0, 3).map((v, i) => v * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const layers = [];
  for (let node = el; node; node = node.parentElement) {
    const c = rgba(getComputedStyle(node).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  let back = [255, 255, 255, 1];
  for (const c of layers.reverse()) back = over(c, back);
  const text = over(rgba(getComputedStyle(el).color), back);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const [a, b] = [lum(text), lum(back)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""
"""WCAG's contrast ratio of an element's text against the first background behind it that is not transparent."""


def _contrasts(page) -> dict:
    """The lowest contrast of each kind of text in the form: completions (ranked and not), prompt, key hint."""
    out = {}
    for name, selector in (("completion", ".rlhf-text"), ("prompt", ".rlhf-prompt"), ("keys", ".rlhf-keys")):
        found = page.locator(selector)
        out[name] = round(min(found.nth(i).evaluate(CONTRAST) for i in range(found.count())), 2)
    return out


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def test_rank_in_jupyterlab_in_headless_chromium(tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=45_000)    # kernel start and first imports take seconds on 2 cores

    start = time.perf_counter()
    labels = tmp_path / "labels"
    _write_notebook(tmp_path, labels)
    port, token = _free_port(), secrets.token_hex(16)
    lab = _start_lab(tmp_path, port, token)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1024, "height": 768})
                page.set_default_timeout(45_000)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/ranker.ipynb?token={token}")
                contrast = _session(page, expect)
            finally:
                browser.close()
    finally:
        _stop(lab)
    (store,) = labels.glob("browser-*/browser-test.jsonl")
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(records) == 6   # ranking, retraction, correction; by keys: ranking, retraction, again
    assert records[0]["ranking"] == ORDER and records[0]["labeler"] == "browser-test"
    assert records[0]["prompt_id"] == "ins-train-00000" and records[0]["source"] == "human"
    assert records[1]["retracted"] and records[1]["ranking"] == ORDER
    assert records[2]["ranking"] == CORRECTED and not records[2]["retracted"]
    assert [r["ranking"] for r in records[3:]] == [KEYED] * 3 and [r["retracted"] for r in records[3:]] == [False, True, False]
    assert all(r["prompt_id"] == "ins-train-00001" for r in records[3:])
    from rlhf_lab.labels.preferences import load_preferences
    assert [(r.prompt_id, r.ranking) for r in load_preferences(store)] == [("ins-train-00000", CORRECTED),
                                                                          ("ins-train-00001", KEYED)]
    for theme, values in contrast.items():
        assert min(values.values()) >= 4.5, f"{theme} theme: text contrast {values} (WCAG AA asks for 4.5)"
    print(f"browser round trip in {time.perf_counter() - start:.1f} s; contrast {contrast}")


KEYED = [1, 0, 3, 2]   # the ranking typed with keys on the second prompt: B, A, D, C


def _session(page, expect) -> dict:
    """Everything the student does in the page; returns the contrast ratios in both themes."""
    _run_all_cells(page, expect)
    buttons = [page.locator(f"button.rlhf-rank-{k}") for k in range(4)]
    expect(buttons[0]).to_have_text("pick as #1")
    expect(page.locator(".widget-label", has_text="0 / 2 labeled")).to_have_count(1)
    undo_submit = page.locator("button.rlhf-undo-submit")
    assert undo_submit.evaluate("b => b.scrollWidth <= b.clientWidth"), "'undo submit' is cut off at 1024 px"
    for rank, k in enumerate(ORDER, 1):
        buttons[k].click()
        expect(buttons[k]).to_have_text(f"#{rank}")       # the rank shows on the completion
    submit = page.locator("button.rlhf-submit")
    expect(submit).to_be_enabled()
    submit.click()
    expect(page.get_by_text("saved C > A > D > B (1 / 2)")).to_be_visible()
    expect(buttons[0]).to_have_text("pick as #1")           # the next prompt is up
    page.wait_for_timeout(500)                              # past the double-click guard
    undo_submit.click()                                     # a mistake: take it back
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
    second = page.locator(".rlhf-text").first.inner_text()

    # a restart: the old form says its kernel is gone; the ranker cell alone brings the same prompt back
    _menu(page, "Kernel", "Restart Kernel…")
    page.locator(".jp-Dialog-button", has_text="Restart").click()
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()
    page.locator(".rlhf-prompt").click()
    expect(page.locator(".rlhf-gone")).to_be_visible(timeout=10_000)
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputArea-prompt").click()
    _menu(page, "Run", "Run Selected Cell")
    expect(page.locator(".widget-label", has_text="1 / 2 labeled")).to_have_count(1)
    expect(page.locator(".rlhf-text").first).to_have_text(second)

    # keys: letters rank, Enter saves, Z takes it back; nothing reaches the notebook's shortcuts
    cells = page.locator(".jp-Notebook .jp-Cell").count()
    page.locator(".rlhf-prompt").click()                    # focus the form
    for key, k in zip("bad", KEYED):
        page.keyboard.press(key)
        expect(buttons[k]).to_have_text(f"#{KEYED.index(k) + 1}")
    if os.environ.get("RLHF_LAB_SCREENSHOT"):
        page.locator(".rlhf-ranker").screenshot(path=os.environ["RLHF_LAB_SCREENSHOT"])
    contrast = {"light": _contrasts(page)}
    _menu(page, "Settings", "Theme")
    page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
    expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1)
    page.wait_for_timeout(500)                              # the theme's style sheet applied
    contrast["dark"] = _contrasts(page)
    page.locator(".rlhf-prompt").click()                    # the focus back in the form
    page.keyboard.press("c")
    page.keyboard.press("Enter")
    expect(page.get_by_text("saved B > A > D > C (2 / 2)")).to_be_visible()
    page.wait_for_timeout(500)
    page.keyboard.press("z")
    expect(page.get_by_text("took back ins-train-00001")).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.get_by_text("saved B > A > D > C (2 / 2)")).to_be_visible()
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells, "a key reached JupyterLab: a cell was added"
    return contrast
