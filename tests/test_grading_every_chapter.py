"""nbgrader grades the exercises of every chapter for real. Each chapter's exercise cells and graded cells,
with the chapter's setup and import cells before them (all that its exercises need), are one notebook of the
assignment ``exercises``; nbgrader generates it, then autogrades two submissions: the solutions (full marks in
every notebook) and nbgrader's own stubs (zero in every notebook). The whole chapters are graded end to end
in tests/test_grading.py."""
import nbformat

from utils import grading
from utils.assignments import chapters_with_exercises, is_solution_cell

from test_grading import ROOT, nbgrader

CHAPTERS = chapters_with_exercises(ROOT / "notebooks")


def exercises_only(nb):
    """The notebook with its setup and import cells (its first two code cells), every exercise and every graded
    cell, and nothing else."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    keep = {id(code[0]), id(code[1])}
    for index, cell in enumerate(code):
        if is_solution_cell(cell) or cell.metadata.get("nbgrader", {}).get("grade"):
            keep.add(id(cell))
    nb.cells = [cell for cell in nb.cells if id(cell) in keep]
    return nb


def test_nbgrader_gives_every_chapters_solutions_full_marks_and_its_stubs_zero(tmp_path):
    course = tmp_path / "course"
    grading.make_course(course, chapters=[CHAPTERS[0].name[:2]])  # the course's nbgrader_config.py
    source = course / "source" / "exercises"
    source.mkdir(parents=True)
    expected = {}
    for path in CHAPTERS:
        nb = exercises_only(nbformat.read(path, as_version=4))
        nbformat.write(nb, source / path.name)
        expected[path.stem] = sum(grading.graded_points(nb).values())
    nbgrader("generate_assignment", "exercises", "--force", cwd=course)
    for student, folder in (("solution", source), ("stub", course / "release" / "exercises")):
        submission = course / "submitted" / student / "exercises"
        submission.mkdir(parents=True)
        for path in CHAPTERS:
            (submission / path.name).write_bytes((folder / path.name).read_bytes())
    nbgrader("autograde", "exercises", cwd=course)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in ("solution", "stub"):
            submission = gradebook.find_submission("exercises", student)
            scores = {nb.name: (nb.score, nb.max_score) for nb in submission.notebooks}
            assert set(scores) == set(expected), scores
            for name, points in expected.items():
                wanted = points if student == "solution" else 0
                assert points > 0 and scores[name] == (wanted, points), (student, name, scores[name])
