"""Put a fresh picture of the ranker into notebook 02 (the attachment its section 4 shows).

    make screenshot      (runs the browser test with RLHF_LAB_SCREENSHOT set, then this)

The picture is taken by tests/labels/test_browser.py from the widget as it is now, mid-ranking in
JupyterLab's light theme, so that the notebook never shows an older form than the one it runs.
"""
import base64
import sys
from pathlib import Path

import nbformat

NOTEBOOK = Path("notebooks/02_preference_data.ipynb")
NAME = "ranker.png"


def main(png: str) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown" and f"attachment:{NAME}" in "".join(c["source"])]
    if len(cells) != 1:
        sys.exit(f"{NOTEBOOK}: expected one markdown cell showing attachment:{NAME}, found {len(cells)}")
    cells[0]["attachments"] = {NAME: {"image/png": base64.b64encode(Path(png).read_bytes()).decode()}}
    tmp = NOTEBOOK.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(NOTEBOOK)
    print(f"{NOTEBOOK}: {NAME} replaced by {png}")


if __name__ == "__main__":
    main(sys.argv[1])
