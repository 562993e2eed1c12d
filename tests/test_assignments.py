"""utils.assignments: student copies from solution regions, on a synthetic notebook and on the course's."""
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from torch import nn

from utils import assignments, grading
from utils.assignments import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_SOLUTION, REVEAL, StudentCopyEdited, generate,
                               is_solution_cell, student_text)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDENT = NOTEBOOKS / "student"
CHAPTERS = assignments.chapters_with_exercises(NOTEBOOKS)


def nbgrader(solution, grade_id):
    return {"grade": False, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}


def solution_cell(source):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = nbgrader(True, "ex")
    cell.outputs = [new_output("stream", name="stdout", text="secret output\n")]
    cell.execution_count = 3
    return cell


def synthetic_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# 01 · Title"),
        solution_cell("def double(x):\n    \"\"\"x -> 2 x\"\"\"\n    # Hint: multiply by 2\n    ### BEGIN SOLUTION\n"
                      "    return 2 * x\n    ### END SOLUTION\n\n\nVALUE = 1"),
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
    assert generate(notebooks, student) == {"01_demo_student.ipynb": "wrote"}
    assert not list(student.glob("02_plain*"))  # no exercise, no student copy
    nb = nbformat.read(student / "01_demo_student.ipynb", as_version=4)
    exercise, check = nb.cells[1].source, nb.cells[2].source
    assert exercise == ('def double(x):\n    """x -> 2 x"""\n    # Hint: multiply by 2\n    # YOUR CODE HERE\n'
                        '    raise NotImplementedError()\n\n\nVALUE = 1')
    assert check == "print(double(VALUE))\nprint('end')"
    assert all(cell.get("outputs", []) == [] and cell.get("execution_count") is None for cell in nb.cells)
    assert nb.cells[0].source.startswith("# 01 · Title (student copy)\n") and "Student copy" in nb.cells[0].source
    assert nb.cells[1].metadata["nbgrader"]["solution"]


def test_the_stub_raises_not_implemented(course):
    notebooks, student = course
    generate(notebooks, student)
    namespace = {}
    exec(nbformat.read(student / "01_demo_student.ipynb", as_version=4).cells[1].source, namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](1)


def test_regeneration_is_byte_identical_and_idempotent(course):
    notebooks, student = course
    generate(notebooks, student)
    first = (student / "01_demo_student.ipynb").read_bytes(), (student / assignments.MANIFEST).read_bytes()
    assert generate(notebooks, student) == {"01_demo_student.ipynb": "unchanged"}
    assert ((student / "01_demo_student.ipynb").read_bytes(), (student / assignments.MANIFEST).read_bytes()) == first


def test_an_edited_copy_is_never_overwritten_unless_forced(course, capsys):
    notebooks, student = course
    generate(notebooks, student)
    copy = student / "01_demo_student.ipynb"
    copy.write_text(copy.read_text().replace("# YOUR CODE HERE", "return 2 * x  # my work"))
    edited = copy.read_text()
    with pytest.raises(StudentCopyEdited, match=r"01_demo_student\.ipynb.*--force"):
        generate(notebooks, student)
    assert copy.read_text() == edited
    assert assignments.main(["--notebooks", str(notebooks)]) == 1
    err = capsys.readouterr().err
    assert "01_demo_student.ipynb" in err and "--force" in err and copy.read_text() == edited
    assert assignments.main(["--notebooks", str(notebooks), "--force"]) == 0
    assert copy.read_text() == student_text(notebooks / "01_demo.ipynb")


def test_a_changed_solution_notebook_updates_an_unedited_copy(course):
    notebooks, student = course
    generate(notebooks, student)
    nb = synthetic_notebook()
    nb.cells[3].source = "print('changed')"
    nbformat.write(nb, notebooks / "01_demo.ipynb")
    assert generate(notebooks, student) == {"01_demo_student.ipynb": "wrote"}
    assert "changed" in (student / "01_demo_student.ipynb").read_text()


def test_an_unrecorded_copy_that_differs_is_refused(course):
    notebooks, student = course
    student.mkdir()
    (student / "01_demo_student.ipynb").write_text("{}")
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


def with_a_worked_solution():
    """The synthetic chapter with a worked-solution section after its check, and a lesson cell after that."""
    nb = synthetic_notebook()
    reveal = [new_markdown_cell("## 2. The solution\n\nIt doubles."), new_code_cell("print(2 * 21)"),
              new_markdown_cell("Hence the answer.")]
    for cell in reveal:
        cell.metadata["tags"] = [REVEAL]
    nb.cells[3:3] = [*reveal, new_markdown_cell("## 3. Next"), new_code_cell("print('lesson')")]
    nb.cells.append(new_markdown_cell("Why 2? It is the factor.", metadata={"tags": [REVEAL]}))
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index}"
    return nb


def test_cells_that_reveal_a_solution_become_one_note_per_run():
    nb = assignments.student_notebook(with_a_worked_solution(), "01_demo.ipynb")
    sources = [cell.source for cell in nb.cells]
    assert not [cell for cell in nb.cells if REVEAL in cell.metadata.get("tags", [])]
    assert not [s for s in sources if "It doubles" in s or "2 * 21" in s or "Hence" in s or "factor" in s]
    notes = [s for s in sources if s.startswith("> **Not in the student copy:**")]
    assert len(notes) == 2 and all("`notebooks/01_demo.ipynb`" in note for note in notes)
    assert "section *2. The solution*" in notes[0] and "section *3. Next*" in notes[1]
    assert sources[sources.index(notes[0]) + 1] == "## 3. Next" and "print('lesson')" in sources
    assert [cell.id for cell in nb.cells if cell.source in notes] == ["cell-3-note", "cell-9-note"]


@pytest.mark.parametrize("which", [1, 2])
def test_an_exercise_or_a_graded_cell_tagged_as_revealing_is_an_error(which):
    nb = synthetic_notebook()
    nb.cells[2].metadata["nbgrader"] = {**nbgrader(False, "test_ex"), "grade": True, "points": 1}
    nb.cells[which].metadata["tags"] = [REVEAL]
    with pytest.raises(ValueError, match=f"01_demo.ipynb, cell {which} is tagged 'solution-reveal'"):
        assignments.student_notebook(nb, "01_demo.ipynb")


# ---------- the course's own student copies ----------

def test_the_course_has_exercises_in_the_chapters_the_issue_names():
    names = {path.name[:2] for path in CHAPTERS}
    assert {"03", "05", "08", "09", "10", "11", "12"} <= names


def test_the_committed_student_copies_are_not_stale():
    on_disk = sorted(path.name for path in STUDENT.glob("*.ipynb"))
    assert on_disk == [assignments.student_name(path) for path in CHAPTERS], "run `make student`"
    manifest = assignments.read_manifest(STUDENT)
    for path in CHAPTERS:
        text, name = student_text(path), assignments.student_name(path)
        assert (STUDENT / name).read_text() == text, f"{name} is stale: run `make student`"
        assert manifest[name] == assignments.sha256(text)


def region_lines(source):
    """The non-blank lines strictly inside the solution regions of a cell's source."""
    inside, lines = False, []
    for line in source.split("\n"):
        if line.strip() in (BEGIN_SOLUTION, END_SOLUTION):
            inside = line.strip() == BEGIN_SOLUTION
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def student_copy(path):
    return nbformat.read(STUDENT / assignments.student_name(path), as_version=4)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_no_solution_code_is_left_in_a_student_copy(path):
    solution, student = nbformat.read(path, as_version=4), student_copy(path)
    text = "\n".join(cell.source for cell in student.cells)
    assert BEGIN_SOLUTION not in text and END_SOLUTION not in text and BEGIN_HIDDEN not in text
    secret = [line for cell in solution.cells if is_solution_cell(cell) for line in region_lines(cell.source)]
    assert secret
    student_lines = {line.strip() for line in text.split("\n")}
    assert not [line for line in secret if line in student_lines]
    assert all(not cell.get("outputs") for cell in student.cells)
    assert student.cells[0].source.split("\n")[0].endswith("(student copy)")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_no_cell_between_an_exercise_and_its_graded_check_shows_the_course_code(path):
    """The student must not meet the solution (a printed source, a reference call) before the check."""
    cells = student_copy(path).cells
    for index, cell in enumerate(cells):
        if is_solution_cell(cell):
            check = next(i for i in range(index + 1, len(cells)) if cells[i].metadata.get("nbgrader", {}).get("grade"))
            between = "\n".join(c.source for c in cells[index + 1:check])
            assert "getsource" not in between, (path.name, between)


def exercises_and_checks(nb):
    """(solution cell, the code cell after it) for every exercise of a notebook."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    return [(cell, code[index + 1]) for index, cell in enumerate(code) if is_solution_cell(cell)]


def run_cells(namespace, *sources):
    """Execute cell sources in ``namespace`` (one per notebook, like its kernel); return what they printed and
    the exception that stopped them, if any."""
    output = io.StringIO()
    try:
        with redirect_stdout(output):
            for source in sources:
                exec(source, namespace)
    except Exception as error:  # an assert of a graded cell
        return output.getvalue(), error
    return output.getvalue(), None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_each_graded_cell_passes_the_solution_and_fails_the_stub(path):
    pairs = {"solution": exercises_and_checks(nbformat.read(path, as_version=4)),
             "student": exercises_and_checks(student_copy(path))}
    assert len(pairs["solution"]) == len(pairs["student"]) > 0
    solution_namespace, student_namespace = {"torch": torch, "nn": nn}, {"torch": torch, "nn": nn}
    for (solution, check), (stub, student_check) in zip(pairs["solution"], pairs["student"]):
        printed, error = run_cells(solution_namespace, solution.source, check.source)
        checks = check.source.count("assert check(")  # one visible check and at least one hidden one
        assert checks >= 2 and error is None and printed.count("✓ ") == checks == printed.count("\n"), printed
        printed, error = run_cells(student_namespace, stub.source, student_check.source)
        assert isinstance(error, AssertionError), error
        assert printed.startswith("✗ ") and "not implemented yet" in printed and printed.count("\n") == 1, printed


def test_every_student_copy_runs_up_to_its_first_check_without_another_error(monkeypatch):
    """Quick mode, a real kernel: in every student copy, each cell up to its first graded check runs without an
    error, and that check prints its one-line failure and fails its assert (the stub is not implemented yet).
    One kernel serves all copies (``%reset -f`` empties the namespace between them), so torch loads once."""
    monkeypatch.setenv("GRU_COURSE_QUICK", "1")
    combined, first_checks = new_notebook(), {}
    for path in CHAPTERS:
        nb = student_copy(path)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        first_checks[path.name] = code[next(i for i, cell in enumerate(code) if is_solution_cell(cell)) + 1]
        combined.cells += [new_code_cell(f"%reset -f\n# student copy of {path.name}")]
        combined.cells += nb.cells[: nb.cells.index(first_checks[path.name]) + 1]
    NotebookClient(combined, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(STUDENT)}}).execute()
    for cell in combined.cells:
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if cell in first_checks.values():
            assert [e.ename for e in errors] == ["AssertionError"], cell.source
        else:
            assert not errors, (cell.source[:200], errors[0].ename, errors[0].evalue)
    for name, check in first_checks.items():
        printed = "".join(output.get("text", "") for output in check.outputs)
        assert printed.startswith("✗ ") and "not implemented yet" in printed and printed.count("\n") == 1, \
            (name, printed)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_run_all_goes_on_past_every_exercise_and_graded_cell_of_a_student_copy(path):
    """JupyterLab's Run All (and nbclient, and nbgrader) go on past a cell tagged ``raises-exception``: a student
    who has not solved an exercise yet can still run the rest of the lesson; the graded cell still fails."""
    for cell in student_copy(path).cells:
        nbgrader = cell.metadata.get("nbgrader", {})
        if nbgrader.get("solution") or nbgrader.get("grade"):
            assert "raises-exception" in cell.metadata.get("tags", []), cell.source[:120]
        else:
            assert "raises-exception" not in cell.metadata.get("tags", []), cell.source[:120]


def normalized(text):
    return re.sub(r"\s+", "", text)


def solution_statements(nb, *, parts=False):
    """The code of every line of the notebook's solution regions, whitespace removed, of 12 characters or more;
    with ``parts``, also each assignment's right-hand side and each returned expression (as the exercise hook
    ``check_exercises.py`` reads them)."""
    statements = set()
    for cell in nb.cells:
        for line in region_lines(cell.source) if is_solution_cell(cell) else []:
            code = line.split("#", 1)[0].strip()
            found = [code]
            assignment = re.match(r"^[\w\s,\[\]\.]+?=(?!=)(.+)$", code)
            if parts and assignment:
                found.append(assignment.group(1))
            if parts and code.startswith("return "):
                found.append(code[len("return "):])
            statements |= {normalized(part) for part in found if len(normalized(part)) >= 12}
    return statements


SOLUTION_HEADING = re.compile(r"^\s*#.*solution", re.I | re.M)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_no_student_copy_shows_a_worked_solution(path):
    """No heading that names a solution, no cell tagged solution-reveal, no line of a solution region."""
    student = student_copy(path)
    markdown = [cell.source for cell in student.cells if cell.cell_type == "markdown"]
    assert not [m.group(0) for source in markdown for m in SOLUTION_HEADING.finditer(source)]
    assert not [cell.source[:80] for cell in student.cells if REVEAL in cell.metadata.get("tags", [])]
    lines = [normalized(line) for cell in student.cells for line in cell.source.split("\n")]
    statements = solution_statements(nbformat.read(path, as_version=4))
    assert statements and not [s for s in statements if any(s in line for line in lines)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name[:2])
def test_no_hint_states_a_line_of_the_solution(path):
    """A hint names the idea, the shapes, a check and the trap: none of its lines holds (whitespace aside) a
    solution line's code, an assignment's right-hand side or a returned expression of 12 characters or more."""
    statements = solution_statements(nbformat.read(path, as_version=4), parts=True)
    hints = [normalized(line.strip().lstrip("#")) for cell in student_copy(path).cells if is_solution_cell(cell)
             for line in cell.source.split("\n") if line.strip().startswith("#")]
    assert any(hint.startswith("Hint:") for hint in hints)
    assert not [(hint, s) for hint in hints for s in statements if s in hint]


def test_the_grading_course_sources_keep_the_graded_cells_and_show_no_worked_solution(tmp_path):
    made = grading.make_course(tmp_path / "course")
    for path in CHAPTERS:
        chapter, source = (nbformat.read(p, as_version=4) for p in (path, made[grading.assignment_name(path)]))
        assert not [cell.source[:80] for cell in source.cells if REVEAL in cell.metadata.get("tags", [])]
        graded = lambda nb: [cell for cell in nb.cells if cell.metadata.get("nbgrader")]
        assert graded(source) == graded(chapter) and BEGIN_HIDDEN in "".join(c.source for c in graded(source))
