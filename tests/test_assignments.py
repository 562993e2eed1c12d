"""utils.assignments: student copies from solution regions, on a synthetic notebook and on the course's."""
import io
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from torch import nn

from utils import assignments
from utils.assignments import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_SOLUTION, StudentCopyEdited, generate,
                               is_solution_cell, student_text)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDENT = NOTEBOOKS / "student"
CHAPTERS = assignments.chapters_with_exercises(NOTEBOOKS)


def nbgrader(solution, grade_id):
    return {"grade": False, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}


def solution_cell(source, hint=None):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = nbgrader(True, "ex")
    if hint:
        cell.metadata["assignment"] = {"hint": hint}
    cell.outputs = [new_output("stream", name="stdout", text="secret output\n")]
    cell.execution_count = 3
    return cell


def synthetic_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# 01 · Title"),
        solution_cell("def double(x):\n    \"\"\"x -> 2 x\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                      "    ### END SOLUTION\n\n\nVALUE = 1", hint="multiply by 2"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(double(VALUE))\n### BEGIN HIDDEN TESTS\nassert double(2) == 4\n"
                      "### END HIDDEN TESTS\nprint('end')"),
        new_code_cell("print('no exercise')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index}"
    return nb


@pytest.fixture
def course(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(synthetic_notebook(), notebooks / "01_demo.ipynb")
    plain = synthetic_notebook()
    plain.cells = plain.cells[:1] + plain.cells[3:]
    nbformat.write(plain, notebooks / "02_plain.ipynb")
    return notebooks, notebooks / "student"


def test_the_student_copy_has_stubs_no_outputs_no_hidden_tests(course):
    notebooks, student = course
    assert generate(notebooks, student) == {"01_demo.ipynb": "wrote"}
    assert not (student / "02_plain.ipynb").exists()  # no exercise, no student copy
    nb = nbformat.read(student / "01_demo.ipynb", as_version=4)
    exercise, check = nb.cells[1].source, nb.cells[2].source
    assert exercise == ('def double(x):\n    """x -> 2 x"""\n    # YOUR CODE HERE\n'
                        '    raise NotImplementedError("multiply by 2")\n\n\nVALUE = 1')
    assert check == "print(double(VALUE))\nprint('end')"
    assert all(cell.get("outputs", []) == [] and cell.get("execution_count") is None for cell in nb.cells)
    assert "Student copy" in nb.cells[0].source and nb.cells[1].metadata["nbgrader"]["solution"]


def test_the_stub_raises_not_implemented_with_the_hint(course):
    notebooks, student = course
    generate(notebooks, student)
    namespace = {}
    exec(nbformat.read(student / "01_demo.ipynb", as_version=4).cells[1].source, namespace)
    with pytest.raises(NotImplementedError, match="multiply by 2"):
        namespace["double"](1)


def test_regeneration_is_byte_identical_and_idempotent(course):
    notebooks, student = course
    generate(notebooks, student)
    first = (student / "01_demo.ipynb").read_bytes(), (student / assignments.MANIFEST).read_bytes()
    assert generate(notebooks, student) == {"01_demo.ipynb": "unchanged"}
    assert ((student / "01_demo.ipynb").read_bytes(), (student / assignments.MANIFEST).read_bytes()) == first


def test_an_edited_copy_is_never_overwritten_unless_forced(course, capsys):
    notebooks, student = course
    generate(notebooks, student)
    copy = student / "01_demo.ipynb"
    copy.write_text(copy.read_text().replace("# YOUR CODE HERE", "return 2 * x  # my work"))
    edited = copy.read_text()
    with pytest.raises(StudentCopyEdited, match=r"01_demo\.ipynb.*--force"):
        generate(notebooks, student)
    assert copy.read_text() == edited
    assert assignments.main(["--notebooks", str(notebooks)]) == 1
    err = capsys.readouterr().err
    assert "01_demo.ipynb" in err and "--force" in err and copy.read_text() == edited
    assert assignments.main(["--notebooks", str(notebooks), "--force"]) == 0
    assert copy.read_text() == student_text(notebooks / "01_demo.ipynb")


def test_a_changed_solution_notebook_updates_an_unedited_copy(course):
    notebooks, student = course
    generate(notebooks, student)
    nb = synthetic_notebook()
    nb.cells[3].source = "print('changed')"
    nbformat.write(nb, notebooks / "01_demo.ipynb")
    assert generate(notebooks, student) == {"01_demo.ipynb": "wrote"}
    assert "changed" in (student / "01_demo.ipynb").read_text()


def test_an_unrecorded_copy_that_differs_is_refused(course):
    notebooks, student = course
    student.mkdir()
    (student / "01_demo.ipynb").write_text("{}")
    with pytest.raises(StudentCopyEdited):
        generate(notebooks, student)


@pytest.mark.parametrize("source, metadata, message", [
    ("### BEGIN SOLUTION\nx = 1", True, "never closed"),
    ("x = 1\n### END SOLUTION", True, "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", True, "inside an open region"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", False, "no nbgrader metadata"),
    ("x = 1", True, "without a '### BEGIN SOLUTION' region"),
])
def test_malformed_regions_are_errors_naming_the_cell(source, metadata, message):
    nb = synthetic_notebook()
    nb.cells[3].source = source
    if metadata:
        nb.cells[3].metadata["nbgrader"] = nbgrader(True, "bad")
    with pytest.raises(ValueError, match=message) as error:
        assignments.student_notebook(nb, "01_demo.ipynb")
    assert "01_demo.ipynb, cell 3" in str(error.value)


# ---------- the course's own student copies ----------

def test_the_course_has_exercises_in_the_chapters_the_issue_names():
    names = {path.name[:2] for path in CHAPTERS}
    assert {"03", "05", "08", "09", "11"} <= names


def test_the_committed_student_copies_are_not_stale():
    on_disk = sorted(path.name for path in STUDENT.glob("*.ipynb"))
    assert on_disk == [path.name for path in CHAPTERS], "run `make student`"
    manifest = assignments.read_manifest(STUDENT)
    for path in CHAPTERS:
        text = student_text(path)
        assert (STUDENT / path.name).read_text() == text, f"{path.name} is stale: run `make student`"
        assert manifest[path.name] == assignments.sha256(text)


def region_lines(source):
    """The non-blank lines strictly inside the solution regions of a cell's source."""
    inside, lines = False, []
    for line in source.split("\n"):
        if line.strip() in (BEGIN_SOLUTION, END_SOLUTION):
            inside = line.strip() == BEGIN_SOLUTION
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_no_solution_code_is_left_in_a_student_copy(path):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(STUDENT / path.name, as_version=4)
    text = "\n".join(cell.source for cell in student.cells)
    assert BEGIN_SOLUTION not in text and END_SOLUTION not in text and BEGIN_HIDDEN not in text
    secret = [line for cell in solution.cells if is_solution_cell(cell) for line in region_lines(cell.source)]
    assert secret
    student_lines = {line.strip() for line in text.split("\n")}
    assert not [line for line in secret if line in student_lines]
    assert all(not cell.get("outputs") for cell in student.cells)


def exercises_and_checks(nb):
    """(solution cell, the code cell after it) for every exercise of a notebook."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    return [(cell, code[index + 1]) for index, cell in enumerate(code) if is_solution_cell(cell)]


def run_cells(namespace, *sources):
    """Execute cell sources in ``namespace`` (one per notebook, like its kernel); return what they printed."""
    output = io.StringIO()
    with redirect_stdout(output):
        for source in sources:
            exec(source, namespace)
    return output.getvalue()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_each_check_passes_on_the_solution_and_fails_on_the_stub(path):
    pairs = {"solution": exercises_and_checks(nbformat.read(path, as_version=4)),
             "student": exercises_and_checks(nbformat.read(STUDENT / path.name, as_version=4))}
    assert len(pairs["solution"]) == len(pairs["student"]) > 0
    solution_namespace, student_namespace = {"torch": torch, "nn": nn}, {"torch": torch, "nn": nn}
    for (solution, check), (stub, student_check) in zip(pairs["solution"], pairs["student"]):
        assert "check_" in check.source and "check_" in student_check.source
        passed = run_cells(solution_namespace, solution.source, check.source)
        assert passed.startswith("✓ ") and passed.count("\n") == 1, passed
        failed = run_cells(student_namespace, stub.source, student_check.source)
        assert failed.startswith("✗ ") and "not implemented yet" in failed and failed.count("\n") == 1, failed


def test_every_student_copy_runs_up_to_its_first_check_without_another_error(course_root, monkeypatch):
    """Quick mode, a real kernel: in every student copy, each cell up to and including the first check runs
    without an error, and that check prints its one-line failure (the stub is not implemented yet). One
    kernel serves all copies (``%reset -f`` empties the namespace between them), so torch loads once."""
    monkeypatch.setenv("GRU_COURSE_QUICK", "1")
    combined, first_checks = new_notebook(), {}
    for path in CHAPTERS:
        nb = nbformat.read(STUDENT / path.name, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        first_checks[path.name] = code[next(i for i, cell in enumerate(code) if is_solution_cell(cell)) + 1]
        combined.cells += [new_code_cell(f"%reset -f\n# student copy: {path.name}")]
        combined.cells += nb.cells[: nb.cells.index(first_checks[path.name]) + 1]
    NotebookClient(combined, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(STUDENT)}}).execute()
    for name, check in first_checks.items():
        printed = "".join(output.get("text", "") for output in check.outputs)
        assert printed.startswith("✗ ") and "not implemented yet" in printed and printed.count("\n") == 1, \
            (name, printed)
