"""Grading for real: nbgrader generates the assignments from the chapters, autogrades a solution submission
(full marks) and a stub submission (zero), and every exercise has a graded, locked test cell with points."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from utils import grading
from utils.assignments import BEGIN_HIDDEN, END_HIDDEN, chapters_with_exercises, is_solution_cell

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters_with_exercises(ROOT / "notebooks")
AUTOGRADED = ("03",)  # a whole chapter graded end to end; every chapter's exercises in test_grading_every_chapter.py


def graded_cells_after_exercises(nb):
    """(solution cell, the code cell after it) for every exercise."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    return [(cell, code[index + 1]) for index, cell in enumerate(code) if is_solution_cell(cell)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_every_exercise_is_followed_by_a_graded_locked_test_with_hidden_cases(path):
    pairs = graded_cells_after_exercises(nbformat.read(path, as_version=4))
    assert pairs
    for solution, test in pairs:
        meta = test.metadata.get("nbgrader", {})
        assert meta.get("grade") is True and meta.get("locked") is True and meta.get("points", 0) > 0, meta
        assert meta["grade_id"] == f"test_{solution.metadata['nbgrader']['grade_id']}"
        visible, _, hidden = test.source.partition(BEGIN_HIDDEN)
        assert "assert check(" in visible and "assert check(" in hidden and END_HIDDEN in hidden, test.source
        assert "# Hint:" in solution.source.split("### BEGIN SOLUTION")[0], "hints go above the solution region"


def nbgrader(*args, cwd):
    """Run nbgrader's command line in the course directory (this interpreter's environment on PATH: nbgrader
    starts alembic from there)."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    result = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def figures_state():
    return {path.name: path.stat().st_mtime_ns for path in (ROOT / "figures").iterdir()}


def test_nbgrader_grades_solutions_full_and_stubs_zero(tmp_path):
    before = figures_state()
    course = tmp_path / "course"
    made = grading.make_course(course)
    assert sorted(made) == sorted(grading.assignment_name(p) for p in CHAPTERS)
    graded = {a: p for a, p in made.items() if p.name[:2] in AUTOGRADED}
    assert len(graded) == len(AUTOGRADED)
    for assignment, source in graded.items():
        nbgrader("generate_assignment", assignment, "--force", cwd=course)
        for student, notebook in (("solution", source), ("stub", course / "release" / assignment / source.name)):
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            shutil.copy(notebook, folder / source.name)
        nbgrader("autograde", assignment, cwd=course)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment, source in graded.items():  # the gradebook knows every graded cell of the chapter
            expected = sum(grading.graded_points(nbformat.read(source, as_version=4)).values())
            assert gradebook.find_assignment(assignment).max_score == expected > 0, assignment
        for assignment in graded:
            solution = gradebook.find_submission(assignment, "solution")
            stub = gradebook.find_submission(assignment, "stub")
            assert solution.score == solution.max_score > 0, (assignment, solution.score)
            assert stub.score == 0, (assignment, stub.score)
    released = nbformat.read(course / "release" / "ch03" / made["ch03"].name, as_version=4)
    text = "\n".join(cell.source for cell in released.cells)
    assert "# Hint:" in text and BEGIN_HIDDEN not in text and "raise NotImplementedError()" in text
    assert (course / "autograded" / "solution" / "ch03" / "course-output" / "figures").is_dir()  # its own folder
    assert figures_state() == before  # no stored figure touched
    assert grading.make_course(course) == made  # nbgrader edited no file that it wrote: a rerun refuses nothing


def test_make_course_refuses_a_chapter_without_exercises(tmp_path):
    with pytest.raises(ValueError, match="only .* have exercises"):
        grading.make_course(tmp_path, chapters=["13"])


def test_the_readme_lists_each_chapters_graded_cells_and_points():
    readme = (ROOT / "README.md").read_text()
    for path in CHAPTERS:
        points = [cell.metadata["nbgrader"]["points"] for cell in nbformat.read(path, as_version=4).cells
                  if cell.metadata.get("nbgrader", {}).get("grade")]
        if points:
            assert re.search(rf"\| {path.name[:2]} · [^|]+ \| {len(points)} \| {sum(points)} \|", readme), path.name
