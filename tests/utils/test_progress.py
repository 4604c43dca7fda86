"""Progress bars: widgets in a live notebook, text whose final frame is what a committed notebook keeps."""
import importlib.util
import io
import json

import pytest

from rlhf_lab.config import repo_root
from rlhf_lab.utils.progress import progress_bar


def nbclean():
    spec = importlib.util.spec_from_file_location("nbclean", repo_root() / ".ci" / "nbclean.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_text_bars_under_rlhf_lab_progress_text(monkeypatch):
    monkeypatch.setenv("RLHF_LAB_PROGRESS", "text")
    out = io.StringIO()
    for _ in progress_bar(range(3), desc="demo", file=out, mininterval=0):
        pass
    frames = out.getvalue().split("\r")
    assert "demo: 100%" in frames[-1] and "3/3" in frames[-1]
    assert "demo:   0%" in out.getvalue()                       # the first frame is there too, before cleaning
    monkeypatch.delenv("RLHF_LAB_PROGRESS")
    from tqdm.auto import tqdm
    assert type(progress_bar(range(1), disable=True)) is tqdm   # otherwise tqdm.auto's choice


def test_nbclean_keeps_each_lines_last_frame_and_plain_metadata(tmp_path):
    clean = nbclean()
    assert clean.last_frames("a:   0%|\ra:  50%|\ra: 100%|\nnext line\n") == "a: 100%|\nnext line\n"
    assert clean.last_frames("done\r\n") == "done\n"
    nb = {"cells": [{"cell_type": "code", "metadata": {"execution": {"t": 1}}, "source": [], "execution_count": 1,
                     "outputs": [{"output_type": "stream", "name": "stdout",
                                  "text": ["SFT:   0%|  | 0/9"]},
                                 {"output_type": "stream", "name": "stdout", "text": ["\rSFT: 100%|##| 9/9\n"]},
                                 {"output_type": "stream", "name": "stdout", "text": ["trained 9 steps\n"]}]}],
          "metadata": {"kernelspec": {"name": "python3"}, "language_info": {"name": "python", "version": "3.11.7"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    clean.clean(str(path))
    out = json.loads(path.read_text())
    assert out["cells"][0]["outputs"][0]["text"] == ["SFT: 100%|##| 9/9\n", "trained 9 steps\n"]
    assert out["metadata"] == clean.METADATA and "execution" not in out["cells"][0]["metadata"]


def _history(n):
    return {"iteration": list(range(1, n + 1)), "objective/gold": [0.1 * i for i in range(n)]}


def _counted(dash, drawn, monkeypatch):
    """Replace the dashboard's rendering by a record of the iterations it would draw."""
    import time

    def draw(history):
        drawn.append(len(history["iteration"]))
        dash._drawn_at, dash._pending = time.perf_counter(), None

    monkeypatch.setattr(dash, "_draw", draw)
    return dash


def test_live_dashboard_redraws_at_most_once_per_interval_and_always_at_the_end(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from rlhf_lab.utils.plots import LiveDashboard

    drawn = []
    dash = _counted(LiveDashboard({"gold": ("objective/gold",)}, ncols=1, max_x=4, min_interval=3600), drawn,
                    monkeypatch)
    for n in (1, 2, 3):
        dash(_history(n))
    assert drawn == [1]                      # the first call draws; the next two fall inside the interval
    dash.close()
    assert drawn == [1, 3]                   # close draws what the skipped calls left
    drawn.clear()
    dash = _counted(LiveDashboard({"gold": ("objective/gold",)}, ncols=1, max_x=4, min_interval=3600), drawn,
                    monkeypatch)
    for n in (1, 2, 3, 4):
        dash(_history(n))
    dash.close()
    assert drawn == [1, 4]                   # the last iteration (max_x) is always drawn, and only once
    drawn.clear()
    dash = LiveDashboard({"gold": ("objective/gold",)}, ncols=1, max_x=2, min_interval=0)
    for n in (1, 2):                         # a real render of each call, then nothing pending
        dash(_history(n))
    dash.close()
    assert dash._pending is None
    with pytest.raises(ValueError, match="min_interval must be >= 0 seconds, got -1"):
        LiveDashboard({"gold": ("objective/gold",)}, min_interval=-1)
