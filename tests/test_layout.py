"""The package reads as the course does: stage folders that import only downward, small modules,
names imported from where they are defined, and light modules that stay light.

A stage may import from its own folder and from the floors below it, never from above; lazy
(function-local) imports count as much as top-level ones, since they are the ones that hide a
circle until the day a function runs.
"""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "rlhf_lab"

FLOORS = ["rlhf_lab", "config", "utils", "world", "lm", "labels", "reward", "rl", "evaluation", "verifiable", "course",
          "exercises", "interop", "cli"]
"""The ladder, bottom first: the package root (its version), the settings, support code without a
stage (atomic writes, cards, plots, the non-finite guard), then the course's stages in the order it
teaches them, the measurements against gold, those of rewards a program can check (pass@k), the course chain, the exercise checkers, TRL's entry
point and the command line on top."""
MAX_LINES = 350


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rlhf_lab"


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every rlhf_lab module ``path`` imports, lazily or not, with the line: `from a.b import c`
    counts as a.b.c when that is a module, else as a.b."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rlhf_lab":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.append((sub if sub in MODULES else node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "rlhf_lab"]
    return out


def test_every_folder_of_the_package_is_on_the_ladder():
    units = {_unit(m) for m in MODULES}
    assert units <= set(FLOORS), f"not on the ladder (add them to FLOORS in this file): {units - set(FLOORS)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downward(module):
    floor = FLOORS.index(_unit(module))
    up = [f"line {line}: {target} ({_unit(target)})" for target, line in _imports(MODULES[module])
          if FLOORS.index(_unit(target)) > floor]
    assert not up, f"{module} ({_unit(module)}, floor {floor}) imports from a floor above it: {up}"


def test_no_import_circle_lazy_imports_included():
    graph = {m: {t for t, _ in _imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert set(state) == set(graph) and all(v == "done" for v in state.values())


def test_a_circle_is_caught(monkeypatch):
    """The circle test can fail: rl.rollout imports rl.ppo; make rl.ppo import rl.rollout back."""
    a, b = "rlhf_lab.rl.ppo", "rlhf_lab.rl.rollout"
    real = _imports
    assert a in {t for t, _ in real(MODULES[b])}
    monkeypatch.setitem(globals(), "_imports", lambda p: real(p) + ([(b, 1)] if p == MODULES[a] else []))
    with pytest.raises(pytest.fail.Exception, match="import circle"):
        test_no_import_circle_lazy_imports_included()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_length_and_docstring(module):
    text = MODULES[module].read_text()
    n = text.count("\n")
    assert n <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {n} lines; split it (the kit's rule: at most {MAX_LINES})"
    if MODULES[module].name != "__init__.py":
        assert ast.get_docstring(ast.parse(text)), f"{module} has no module docstring"


def _defined(module: str) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments), not imports."""
    names = set()
    for node in ast.parse(MODULES[module].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _sources():
    """(where, source) of every module, test, benchmark and notebook."""
    for path in sorted([*PKG.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        yield str(path.relative_to(ROOT)), path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        # the notebook's code cells as one module (an import in one cell serves the cells after it), with
        # IPython's %magics and !commands blanked so that it parses
        cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        yield path.name, re.sub(r"(?m)^(\s*)[%!].*$", r"\1pass", "\n\n".join(cells))


def test_every_name_is_imported_from_the_module_that_defines_it():
    """No re-export shims: `from rlhf_lab.x import y` finds y defined in x (or y is a module)."""
    wrong = []
    for where, source in _sources():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rlhf_lab":
                assert node.module in MODULES, f"{where}: no module {node.module}"
                defined = _defined(node.module)
                wrong += [f"{where}: {node.module}.{a.name}" for a in node.names
                          if a.name not in defined and f"{node.module}.{a.name}" not in MODULES
                          and a.name != "__version__"]
    assert not wrong, "imported from a module that does not define it:\n" + "\n".join(wrong)


def test_function_local_imports_say_why():
    """A function-local import is for a heavy or optional import only, and a comment says so."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text().split("\n")
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    here = lines[node.lineno - 1:node.end_lineno]
                    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                    if not any("#" in line for line in here) and not above.startswith("#"):
                        silent.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not silent, "function-local imports without a comment saying why:\n" + "\n".join(silent)


LIGHT = ["rlhf_lab.utils.artefacts", "rlhf_lab.labels.store", "rlhf_lab.labels.preferences",
         "rlhf_lab.labels.label_sets", "rlhf_lab.labels.ranker", "rlhf_lab.world.reviews", "rlhf_lab.world.judges"]


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_import_no_torch(module):
    """The label store, the ranker and the world start without torch (a second or more to import):
    a labeling session or a process that only appends labels starts at once."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing {module} loads {out.stdout.strip()}"


def _dotted_names(text: str) -> set[str]:
    return set(re.findall(r"\brlhf_lab(?:\.[A-Za-z_]\w*)+", text))


def test_dotted_names_in_the_docs_and_notebooks_exist():
    """`rlhf_lab.x.y` in the README, docs/ and the notebooks names a module, or a name a module defines."""
    texts = [(p, p.read_text()) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
    texts += [(p, "".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"]))
              for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    stale = []
    for path, text in texts:
        for name in sorted(_dotted_names(text)):
            parts = name.split(".")
            module = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in MODULES), None)
            rest = parts[len(module.split(".")):] if module else parts
            if module is None or (rest and rest[0] not in _defined(module)):
                stale.append(f"{path.name}: {name}")
    old = ROOT / "README.md"   # the table of old import paths names modules that are gone on purpose
    table = old.read_text().split("### Where a module went")[1].split("\n## ")[0]
    stale = [s for s in stale if not (s.startswith("README.md") and s.split(": ")[1] in _dotted_names(table))]
    assert not stale, "names that no module defines:\n" + "\n".join(stale)


def test_the_course_table_names_files_that_exist():
    section = (ROOT / "README.md").read_text().split("## The course")[1].split("\n#")[0]
    rows = [r for r in section.split("\n") if re.match(r"\| \d\d \|", r)]
    assert len(rows) == len(list((ROOT / "notebooks").glob("*.ipynb")))
    missing = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        missing += [f"rlhf_lab/{m}" for m in re.findall(r"`([^`]+)`", cells[3]) if not (PKG / m).exists()]
        missing += [t for t in re.findall(r"`([^`]+)`", cells[4]) if not (ROOT / t).exists()]
    assert not missing, f"the README's course table names files that do not exist: {missing}"


def test_tests_mirror_the_stage_folders():
    """tests/rl/ checks rlhf_lab/rl/, and so on: every stage folder has its test folder and back."""
    stages = {p.parent.name for p in PKG.glob("*/__init__.py")}
    test_folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert stages == test_folders, f"stage folders without tests: {stages - test_folders}; " \
                                   f"test folders without a stage: {test_folders - stages}"


def test_attributes_of_an_imported_module_are_defined_there():
    """`from rlhf_lab.world import judges` then `judges.x`: x is defined in judges (no attribute that only
    an import of the module brings along, which breaks the day that import goes)."""
    wrong = []
    for where, source in _sources():
        tree = ast.parse(source)
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rlhf_lab":
                aliases |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names
                            if f"{node.module}.{a.name}" in MODULES}
            elif isinstance(node, ast.Import):
                aliases |= {a.asname: a.name for a in node.names if a.asname and a.name in MODULES}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr not in _defined(aliases[node.value.id])
                    and f"{aliases[node.value.id]}.{node.attr}" not in MODULES):
                wrong.append(f"{where}: {node.value.id}.{node.attr} ({aliases[node.value.id]})")
    assert not wrong, "attributes the module does not define:\n" + "\n".join(sorted(set(wrong)))
