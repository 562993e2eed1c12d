"""The chapters as stored in git: what a reader opens on the web without running anything."""
import ast
import html
import inspect
import re
import textwrap
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from utils.notebooks import REPO_URL, first_code_cell, full_run_minutes, setup_cell_source

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 1024 * 1024


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_stored_from_one_full_run(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size / 1024:.0f} KB, keep under 1 MB"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not executed top to bottom in one run: {counts}"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, f"{path.name}: stored error {errors[0].ename}: {errors[0].evalue}"
    text = "".join(out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream")
    assert "mode: quick" not in text, f"{path.name}: stored from a quick run; store a full run"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_starts_with_a_title_and_the_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert first_code_cell(nb).source == setup_cell_source(full_run_minutes(nb)), (
        f"{path.name}: run `python -m utils.notebooks sync-setup-cell {path.relative_to(ROOT)}`")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_readme_lists_the_chapter_with_its_colab_link(path):
    readme = (ROOT / "README.md").read_text()
    colab = REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f"({colab}/blob/main/notebooks/{path.name})" in readme, f"README's chapter table lacks {path.name}"


SAVED = re.compile(r'save_figure\(\s*\w+\s*,\s*"([^"]+)"')


def saved_figures(path):
    """The figure names that a chapter's code cells pass to save_figure."""
    nb = nbformat.read(path, as_version=4)
    return SAVED.findall("\n".join(cell.source for cell in nb.cells if cell.cell_type == "code"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_a_chapter_saves_is_named_after_it_and_stored(path):
    names = saved_figures(path)
    assert all(name.startswith(path.name[:3]) for name in names), (path.name, names)
    missing = [name for name in names if not (ROOT / "figures" / f"{name}.png").is_file()]
    assert not missing, f"{path.name} saves {missing}, but figures/ lacks them: store the chapter"


def test_every_stored_figure_comes_from_a_chapter():
    saved = {name for path in CHAPTERS for name in saved_figures(path)}
    stale = sorted(path.name for path in (ROOT / "figures").glob("*.png") if path.stem not in saved)
    assert not stale, f"figures/ holds figures no chapter saves any more: {stale}"


def _printed_text(cell) -> str:
    """Everything a stored cell shows as text (streams and text/* displays), whitespace collapsed."""
    parts = []
    for out in cell.outputs:
        parts.append(out.get("text", ""))
        for kind, value in out.get("data", {}).items():
            if kind == "text/html":
                parts.append(html.unescape(re.sub(r"<[^>]+>", " ", value)))
            elif kind.startswith("text/"):
                parts.append(value)
    return " ".join("\n".join(parts).split())


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_source_a_chapter_prints_is_the_current_code(path):
    """A chapter that shows a function's source (``inspect.getsource``) shows what runs: change the function
    and the chapter must be stored again."""
    nb = nbformat.read(path, as_version=4)
    namespace = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            code = TransformerManager().transform_cell(cell.source)
            imports = [node for node in ast.parse(code).body if isinstance(node, (ast.Import, ast.ImportFrom))]
            exec(compile(ast.Module(body=imports, type_ignores=[]), path.name, "exec"), namespace)
    stale = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for name in re.findall(r"getsource\(([\w.]+)\)", cell.source):
                source = " ".join(textwrap.dedent(inspect.getsource(eval(name, namespace))).split())
                if source not in _printed_text(cell):
                    stale.append(name)
    assert not stale, f"{path.name} prints an older source of {stale}: store it again (make run-notebook)"
