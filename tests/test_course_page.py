"""The course stands alone: its own course page, and no text that sends a reader to a file it does not have."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELSEWHERE = re.compile(r"(?-i:\b(?:COURSE|STYLE|LAYOUT)\.md\b)|lecture notes|\bthe notes\b|\bnotes'", re.IGNORECASE)
"""Files and notes outside the repository (the builders' own), which the course must not send a reader to."""


def _texts():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            yield f"{path.name} cell {i}", "".join(cell["source"])
            for out in cell.get("outputs", []):
                yield f"{path.name} cell {i} output", "".join(out.get("text", "")) + "".join(
                    "".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    for path in [*sorted((ROOT / "rlhf_lab").rglob("*.py")), ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        yield str(path.relative_to(ROOT)), path.read_text()


def test_no_text_sends_the_reader_to_a_file_outside_the_repository():
    found = [f"{where}: {m.group(0)!r}" for where, text in _texts() for m in ELSEWHERE.finditer(text)]
    assert not found, "cite the papers or docs/course.md instead:\n" + "\n".join(found)


def test_the_course_page_maps_every_notebook_to_code_that_exists():
    page = (ROOT / "docs" / "course.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d) \|.*$", page, re.MULTILINE)}
    notebooks = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(rows) == notebooks
    for number, row in rows.items():
        code = re.findall(r"`([\w/.]+\.py|[\w]+/)`", row.rsplit("|", 2)[-2])
        assert code, f"notebook {number}'s row names no code"
        for name in code:
            assert (ROOT / "rlhf_lab" / name).exists(), f"notebook {number}'s row names rlhf_lab/{name}, which does not exist"
    assert "docs/course.md" in (ROOT / "README.md").read_text()
