"""Grading the course's exercises with nbgrader: ``python -m utils.grading course DIR`` makes a course directory.

The chapters are nbgrader's source notebooks: each exercise is a solution cell (nbgrader metadata
``solution: true``, the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, its hints as comments
above the region, so that nbgrader's stub keeps them) followed by a graded test cell
(``grade: true``, ``points``, locked) that asserts :func:`utils.checks.check` and hides more cases between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. A source is its chapter less the cells tagged
``solution-reveal`` (a worked solution, which the release must not show either), each run of them replaced
by a note that says where it is (:func:`utils.assignments.without_solutions`).

The course directory holds ``nbgrader_config.py`` (:data:`CONFIG`: quick mode, so a whole chapter grades in
seconds, a cell timeout that fits it, and each student's figures in their own folder) and one assignment per
chapter with exercises, ``source/chNN/NN_name.ipynb``. Then, in that directory::

    nbgrader generate_assignment ch03        # release/ch03/: the students' copies (answers stubbed, hidden tests gone)
    nbgrader collect ch03                    # or copy each submission to submitted/<student>/ch03/
    nbgrader autograde ch03                  # runs every submission, fills the gradebook
    nbgrader generate_feedback ch03          # feedback/<student>/ch03/*.html
    nbgrader export                          # grades.csv

Rerunning it updates the files it wrote, and only those: ``.generated.json`` records them (the record of
:func:`utils.assignments.write_generated`), so a source notebook or ``nbgrader_config.py`` edited since it was
written is never overwritten unless ``--force`` is given, and a file it did not write (``extra_data.csv`` beside
a source notebook) is never touched.
"""
import re
import shlex
import sys
from pathlib import Path

import nbformat

from utils.assignments import (EditedSinceGenerated, ManifestError, chapters_with_exercises,
                               without_solutions, write_generated)
from utils.cli import ArgumentParser, fail
from utils.paths import repo_root

CONFIG_FILE = "nbgrader_config.py"

CONFIG = '''"""nbgrader configuration for the GRU course (written by `python -m utils.grading course`)."""
import os

c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.course_id = "gru-course"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# Grade in quick mode: every chapter runs in seconds with the same code as the full run.
os.environ.setdefault("GRU_COURSE_QUICK", "1")
# Figures and other outputs of a submission go to course-output/ beside it: one folder per student.
os.environ.setdefault("GRU_COURSE_OUTPUT", "course-output")
c.Execute.timeout = 300  # seconds per cell; quick-mode cells take seconds
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
'''


def assignment_name(chapter: Path) -> str:
    """``ch03`` for ``notebooks/03_gru_scratch.ipynb``."""
    match = re.match(r"(\d\d)_", Path(chapter).name)
    if not match:
        raise ValueError(f"{chapter} is not a chapter (NN_name.ipynb)")
    return f"ch{match.group(1)}"


def graded_points(nb) -> dict[str, float]:
    """``grade_id -> points`` of every graded cell of a notebook."""
    return {cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"]
            for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade")}


def chapter_numbers(chapters) -> set[str]:
    """``{"03", "10"}`` for ``["3", "10"]``; a ValueError names what is not a chapter number."""
    wrong = [chapter for chapter in chapters if not re.fullmatch(r"\d{1,2}", str(chapter))]
    if wrong:
        raise ValueError(f"expected chapter numbers such as 3 or 03 (--chapters 3 10), got {wrong}")
    return {f"{int(chapter):02d}" for chapter in chapters}


def make_course(directory, notebooks_dir=None, chapters=None, *, force: bool = False) -> dict[str, Path]:
    """Write an nbgrader course directory: its ``nbgrader_config.py`` and, for every chapter with exercises
    (or those whose number is in ``chapters``), ``source/chNN/NN_name.ipynb``. Returns assignment -> notebook.

    Only the files it wrote are updated (or, in the assignments it writes, removed when their chapter is
    gone); when one was edited since, it writes nothing and raises :class:`EditedSinceGenerated`, unless
    ``force``. The gradebook, the submissions and any file added beside a source notebook are left alone."""
    directory = Path(directory)
    paths = chapters_with_exercises(Path(notebooks_dir) if notebooks_dir else repo_root() / "notebooks")
    if chapters:
        wanted, available = chapter_numbers(chapters), [path.name[:2] for path in paths]
        if not wanted <= set(available):
            raise ValueError(f"chapters {sorted(wanted - set(available))} have no exercises; only chapters "
                             f"{available} have exercises")
        paths = [path for path in paths if path.name[:2] in wanted]
    made, contents = {}, {CONFIG_FILE: CONFIG.encode()}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if not graded_points(nb):
            raise ValueError(f"{path.name} has exercises but no graded test cell")
        name = f"source/{assignment_name(path)}/{path.name}"
        source = nbformat.writes(without_solutions(nb, path.name)).rstrip("\n") + "\n"
        made[assignment_name(path)], contents[name] = directory / name, source.encode()
    rerun = shlex.join(["python", "-m", "utils.grading", "course", str(directory),
                        *(["--chapters", *map(str, chapters)] if chapters else []), "--force"])
    write_generated(directory, contents, rerun=rerun, force=force, replace=[f"source/{a}" for a in made])
    return made


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m utils.grading",
                            description="Make an nbgrader course directory for the course's exercises.")
    sub = parser.add_subparsers(dest="command", required=True)
    course = sub.add_parser("course", help="write nbgrader_config.py and source/chNN/ for the chapters with exercises")
    course.add_argument("directory", type=Path, help="the course directory (made if missing)")
    course.add_argument("--chapters", nargs="+", help="chapter numbers (default: every chapter with exercises)")
    course.add_argument("--force", action="store_true",
                        help="overwrite the files it wrote before even if they were edited since")
    args = parser.parse_args(argv)
    try:
        made = make_course(args.directory, chapters=args.chapters, force=args.force)
    except (EditedSinceGenerated, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        fail(str(err))
    for assignment, path in made.items():
        print(f"{assignment}: {path}")
    print(f"next, in {args.directory}: nbgrader generate_assignment {' '.join(made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
