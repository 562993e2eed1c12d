"""The Colab setup cell, against Colab's published package list (tests/data/colab-pip-freeze.txt): every
third-party module that `utils` and the chapters import is either there or installed by the cell; the cell can
be run twice; it says in one line what it did; paths printed to a student in Colab are absolute."""
import ast
import importlib.metadata
import json
import os
import re
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from utils.figures import figures_location
from utils.notebooks import COLAB_CHECKOUT, COLAB_LACKS, d2l_requirement, requirement, setup_cell_source

ROOT = Path(__file__).resolve().parents[1]
FREEZE = Path(__file__).parent / "data" / "colab-pip-freeze.txt"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_packages() -> set[str]:
    names = set()
    for line in FREEZE.read_text().splitlines():
        if line and not line.startswith("#"):
            names.add(normalise(re.split(r"==| @ ", line)[0]))
    return names


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module that ``source`` imports (at any depth: lazy imports count)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def course_imports() -> set[str]:
    """Third-party modules imported by utils/ and by the chapters' and student copies' code cells."""
    names = set()
    for path in (ROOT / "utils").glob("*.py"):
        names |= imported_modules(path.read_text())
    for path in [*(ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"), *(ROOT / "notebooks/student").glob("*.ipynb")]:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                names |= imported_modules(TransformerManager().transform_cell("".join(cell["source"])))
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("utils", "__future__")}


def test_colab_has_or_the_setup_cell_installs_every_module_the_course_imports():
    installed = {normalise(r) for r in COLAB_LACKS} | {"d2l"}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(course_imports()):
        dists = {normalise(d) for d in distributions.get(module, [module])}
        if not dists & (colab_packages() | installed):
            missing[module] = sorted(dists)
    assert not missing, f"Colab lacks these and the setup cell does not install them: {missing}"
    assert {"torch", "d2l", "ray", "numpy"} <= course_imports()  # the scan sees the course's imports


def test_the_setup_cell_installs_what_it_names_with_the_courses_own_version_ranges():
    source = setup_cell_source()
    for name in COLAB_LACKS:
        assert normalise(name) not in colab_packages(), f"Colab has {name} now: drop it from COLAB_LACKS"
        assert f"'{requirement(name)}'" in source
    assert f"--no-deps {d2l_requirement()} {COLAB_CHECKOUT}" in source and d2l_requirement() == "d2l==1.0.3"


class FakeIPython:
    """What the cell asks of IPython in Colab: shell commands and %pip, recorded instead of run."""

    def __init__(self):
        self.calls = []

    def system(self, command):
        self.calls.append(("!", command))

    def run_line_magic(self, magic, line, *args):
        self.calls.append((magic, line))


def run_setup_cell(monkeypatch, tmp_path, colab: bool, checkout: Path):
    monkeypatch.setenv("GRU_COURSE_ROOT", str(ROOT))  # what the cell sets is undone after the test
    monkeypatch.setenv("GRU_COURSE_QUICK", "0")
    code = TransformerManager().transform_cell(setup_cell_source(checkout=str(checkout)))
    shell = FakeIPython()
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(code, "setup-cell", "exec"), {"get_ipython": lambda: shell})
    return shell.calls


def test_in_colab_the_cell_can_run_twice_and_says_what_it_did(monkeypatch, tmp_path, capsys):
    checkout = tmp_path / "gru-course"
    first = run_setup_cell(monkeypatch, tmp_path, True, checkout)
    assert [c for c in first if c[0] == "!"] and "git clone" in first[0][1]
    assert [c[0] for c in first[1:]] == ["pip", "pip"]
    checkout.mkdir()  # what the clone left
    second = run_setup_cell(monkeypatch, tmp_path, True, checkout)
    assert [c[0] for c in second] == ["pip", "pip"], "a second run clones again (git: destination exists)"
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Colab: the course in {checkout}; installed ray, d2l==1.0.3 and the course"] * 2
    assert os.environ["GRU_COURSE_ROOT"] == str(checkout)


def test_elsewhere_the_cell_does_nothing_but_the_quick_switch(monkeypatch, tmp_path, capsys):
    assert run_setup_cell(monkeypatch, tmp_path, False, tmp_path / "gru-course") == []
    assert capsys.readouterr().out == "" and os.environ["GRU_COURSE_QUICK"] == "0"
    source = setup_cell_source()
    assert "QUICK = False" in source.splitlines()  # one obvious step: set it to True
    code = TransformerManager().transform_cell(source.replace("QUICK = False", "QUICK = True"))
    exec(compile(code, "setup-cell", "exec"), {"get_ipython": FakeIPython})
    assert os.environ["GRU_COURSE_QUICK"] == "1"


def test_each_chapter_states_how_long_its_full_run_takes():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert re.search(r"takes (about \d+ minutes?|under a minute) on a \d+-core CPU", "".join(first["source"])), path.name


def test_figures_are_named_by_an_absolute_path_where_the_notebook_is_not_in_the_clone(course_root, monkeypatch,
                                                                                      tmp_path_factory):
    monkeypatch.chdir(course_root)
    assert figures_location() == "build/figures/"
    elsewhere = tmp_path_factory.mktemp("content")
    monkeypatch.chdir(elsewhere)
    assert figures_location() == f"{course_root / 'build' / 'figures'}/"
