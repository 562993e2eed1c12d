"""nbgrader grades the exercises of every chapter for real. Each chapter's setup and import cells, exercise
cells and graded cells (all that its exercises need), chapter after chapter, make one notebook of the
assignment ``exercises``: one kernel runs them all, as a student's kernel runs a chapter from the top. nbgrader
generates it, then autogrades two submissions: the solutions (full marks in every graded cell) and nbgrader's
own stubs (zero in every graded cell). The whole chapters are graded end to end in tests/test_grading.py."""
import nbformat

from utils import grading
from utils.assignments import chapters_with_exercises, is_solution_cell

from test_grading import ROOT, nbgrader

CHAPTERS = chapters_with_exercises(ROOT / "notebooks")


def exercise_cells(nb) -> list:
    """The notebook's setup and import cells (its first two code cells), then every exercise and graded cell."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    graded = [cell for cell in code[2:] if is_solution_cell(cell) or cell.metadata.get("nbgrader", {}).get("grade")]
    return code[:2] + graded


def every_chapters_exercises():
    """One notebook with every chapter's exercise cells, and ``grade_id -> (chapter, points)``."""
    merged, points = None, {}
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        merged = merged or nbformat.v4.new_notebook(metadata=nb.metadata)
        merged.cells += [nbformat.v4.new_markdown_cell(f"# {path.stem}"), *exercise_cells(nb)]
        points.update({grade_id: (path.stem, p) for grade_id, p in grading.graded_points(nb).items()})
    return merged, points


def test_nbgrader_gives_every_chapters_solutions_full_marks_and_its_stubs_zero(tmp_path):
    course = tmp_path / "course"
    grading.make_course(course, chapters=[CHAPTERS[0].name[:2]])  # the course's nbgrader_config.py
    source = course / "source" / "exercises"
    source.mkdir(parents=True)
    nb, points = every_chapters_exercises()
    assert {chapter for chapter, _ in points.values()} == {path.stem for path in CHAPTERS}
    nbformat.write(nb, source / "exercises.ipynb")
    nbgrader("generate_assignment", "exercises", "--force", cwd=course)
    for student, folder in (("solution", source), ("stub", course / "release" / "exercises")):
        submission = course / "submitted" / student / "exercises"
        submission.mkdir(parents=True)
        (submission / "exercises.ipynb").write_bytes((folder / "exercises.ipynb").read_bytes())
    nbgrader("autograde", "exercises", cwd=course)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in ("solution", "stub"):
            for grade_id, (chapter, full) in points.items():
                grade = gradebook.find_grade(grade_id, "exercises", "exercises", student)
                wanted = full if student == "solution" else 0
                assert full > 0 and (grade.score, grade.max_score) == (wanted, full), (student, chapter, grade_id,
                                                                                         grade.score)
