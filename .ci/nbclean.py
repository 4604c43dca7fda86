"""Make executed notebooks ready to commit: plain metadata, and each progress bar's final frame.

    python .ci/nbclean.py notebooks/*.ipynb      (`make execute` runs it after executing them)

* consecutive outputs of one stream (stdout, stderr) become one, as JupyterLab merges them when it
  opens a notebook (a file it would change on opening is marked modified at once);
* the notebook's metadata becomes exactly what JupyterLab writes when it opens the notebook with the
  ``python3`` kernel of this Python (kernelspec and ``language_info``, which names the Python version):
  with anything else JupyterLab fills it in at once and marks the untouched notebook modified. Each
  cell's ``execution`` timing metadata goes;
* text progress bars (``RLHF_LAB_PROGRESS=text``) redraw a line with carriage returns; a viewer
  without a terminal shows every frame, so each line keeps only the text after its last ``\\r``:
  the bar's final state;
* the scratch runs folder that `make execute` gives the notebooks (``$RLHF_LAB_RUNS``) is written
  ``runs`` in the outputs: the committed outputs are a run with the default runs folder, and a
  message that names a file there reads as a student with the default settings will see it.
"""
import json
import os
import platform
import sys

METADATA = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                              "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                              "pygments_lexer": "ipython3", "version": platform.python_version()}}
"""What ipykernel reports for this interpreter (the one that runs the notebooks: `make execute` uses .venv)."""


SCRATCH_RUNS = os.path.realpath(os.environ["RLHF_LAB_RUNS"]) if os.environ.get("RLHF_LAB_RUNS") else ""
"""The runs folder the notebooks ran with (`make execute` sets it), shown as ``runs`` in the outputs."""


def last_frames(text: str) -> str:
    """Each line as a terminal would leave it: the text after its last carriage return."""
    lines = []
    for line in text.split("\n"):
        frames = [f for f in line.split("\r") if f]
        lines.append(frames[-1] if frames else "")
    return "\n".join(lines)


def clean(path: str) -> None:
    with open(path) as f:
        nb = json.load(f)
    nb["metadata"] = METADATA
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        merged = []
        for out in cell.get("outputs", []):   # one stream output per run of writes, as JupyterLab shows them
            last = merged[-1] if merged else None
            if (out.get("output_type") == "stream" and last is not None and last.get("output_type") == "stream"
                    and last["name"] == out["name"]):
                last["text"] = "".join(last["text"]) + "".join(out["text"])
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                out["text"] = last_frames("".join(out["text"])).splitlines(keepends=True)
            if SCRATCH_RUNS:
                for key in ("text",) if "text" in out else ():
                    out[key] = [line.replace(SCRATCH_RUNS, "runs") for line in out[key]]
                for mime, value in out.get("data", {}).items():
                    if mime.startswith("text/") and isinstance(value, list):
                        out["data"][mime] = [line.replace(SCRATCH_RUNS, "runs") for line in value]
        if "outputs" in cell:
            cell["outputs"] = merged
    with open(path, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        clean(p)
