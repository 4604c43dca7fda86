"""Progress bars: widgets in a live notebook, text whose final frame is what a committed notebook keeps."""
import importlib.util
import io
import json

from rlhf_lab.config import progress_bar, repo_root


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
