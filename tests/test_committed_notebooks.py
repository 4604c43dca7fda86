"""The notebooks as committed: what GitHub and JupyterLab show before anyone runs a cell.

`make execute` writes them this way (text progress bars, `.ci/nbclean.py`); this test keeps it so.
"""
import json
from pathlib import Path

import pytest

from rlhf_lab.config import repo_root

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_committed_notebook_shows_final_progress_and_opens_unmodified(path: Path):
    nb = json.loads(path.read_text())
    meta = nb["metadata"]
    assert meta["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    assert set(meta) == {"kernelspec", "language_info"} and meta["language_info"]["pygments_lexer"] == "ipython3"
    for i, cell in enumerate(nb["cells"]):
        assert "execution" not in cell.get("metadata", {}), (path.name, i)
        outputs = cell.get("outputs", [])
        # a widget's saved output is its first frame ("0%|  | 0/150") everywhere but a live kernel
        assert not any(WIDGET in o.get("data", {}) for o in outputs), (path.name, i, "widget output")
        for a, b in zip(outputs, outputs[1:]):   # JupyterLab merges these on opening: modified at once
            assert not (a["output_type"] == b["output_type"] == "stream" and a["name"] == b["name"]), (path.name, i)
        for o in outputs:
            if o["output_type"] == "stream":
                assert "\r" not in "".join(o["text"]), (path.name, i, "progress frames left in")
