"""Student copies of the chapters: ``python -m utils.assignments [--force]`` (``make student``).

A solution notebook marks what a student writes with nbgrader's syntax: a code cell whose metadata holds
``"nbgrader": {"solution": true, ...}`` contains ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` (its hints
are comments above the region). For every chapter ``notebooks/NN_x.ipynb`` with such a cell, this writes
``notebooks/student/NN_x_student.ipynb``, the same stub that nbgrader's ``generate_assignment`` makes:

- each solution region replaced by ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the region's
  indentation; the code before and after it, hints included, stays;
- ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` removed, delimiters included;
- outputs, execution counts and execution metadata cleared, ``# NBVAL_CHECK_OUTPUT`` lines dropped;
- the cells tagged ``solution-reveal`` (a worked solution: its code, its outputs, the conclusions drawn from
  them) dropped, each run of them replaced by one markdown note naming the chapter and the section that hold
  it (:func:`without_solutions`, which :mod:`utils.grading` applies to nbgrader's sources too);
- the title says "student copy", and the file name ends in ``_student``, wherever it is opened.

The output is deterministic (same input, same bytes). ``notebooks/student/.generated.json`` records the
SHA-256 of each generated file; a student copy whose bytes differ from its record was edited after it was
generated and is never overwritten unless ``--force`` is given. :func:`write_generated` keeps that record
for any folder of generated files; :mod:`utils.grading` uses it for the nbgrader course folder.
"""
import copy
import hashlib
import json
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell

from utils.cli import ArgumentParser, fail
from utils.paths import repo_root

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
NBVAL_MARKER = "# NBVAL_CHECK_OUTPUT"  # only meaningful in the stored solution notebooks
MANIFEST = ".generated.json"
STUDENT_SUFFIX = "_student"
RERUN = "python -m utils.assignments --force"  # the command that overwrites edited student copies
STUDENT_NOTE = ("> **Student copy**, generated from `notebooks/{name}` by `make student`. Each exercise is a "
                "function for you to write: its cell holds hints as comments and a stub, `raise "
                "NotImplementedError()`, to replace with your code. The graded cell after it runs your function "
                "and says in one line what passed, what is wrong, or that the stub is still there. Both cells "
                "are tagged `raises-exception`, so Run All goes on past them: you can read and run the whole "
                "lesson before you solve anything. The worked solutions are in `notebooks/{name}`.")
RUN_ON = "raises-exception"  # JupyterLab's Run All, nbclient and nbgrader go on past a cell with this tag
REVEAL = "solution-reveal"  # a chapter cell that shows a worked solution: no copy for students has it
REVEAL_NOTE = ("> **Not in the student copy:** the worked solution of an exercise above (the course's code, its "
               "outputs and the conclusions drawn from them). Solve the exercise first, then read it in "
               "`notebooks/{name}`, section *{section}*.")


class StudentCopyEdited(RuntimeError):
    """A student copy on disk differs from what was generated last time: it holds someone's work."""


def is_solution_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution", False)


def has_exercises(nb) -> bool:
    return any(is_solution_cell(cell) for cell in nb.cells)


def _replace_regions(lines: list[str], begin: str, end: str, where: str, stub=None) -> list[str]:
    """Lines with every ``begin`` ... ``end`` region (delimiters included) replaced by ``stub(indent)``
    (a list of lines) or removed when ``stub`` is None."""
    out, indent = [], None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == begin:
            if indent is not None:
                raise ValueError(f"{where}: line {number} opens {begin!r} inside an open region")
            indent = line[: len(line) - len(line.lstrip())]
            continue
        if stripped == end:
            if indent is None:
                raise ValueError(f"{where}: line {number} has {end!r} without {begin!r}")
            out.extend(stub(indent) if stub else [])
            indent = None
            continue
        if indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: {begin!r} is never closed by {end!r}")
    return out


def student_cell(cell, where: str):
    """A student version of one cell (a new object): regions stubbed, hidden tests removed, no outputs."""
    cell = copy.deepcopy(cell)
    cell.metadata.pop("execution", None)
    if cell.cell_type != "code":
        return cell
    cell.outputs, cell.execution_count = [], None
    lines = cell.source.split("\n")
    if any(line.strip() == BEGIN_SOLUTION for line in lines):
        if not is_solution_cell(cell):
            raise ValueError(f"{where} has {BEGIN_SOLUTION!r} but no nbgrader metadata with solution: true")
        lines = _replace_regions(lines, BEGIN_SOLUTION, END_SOLUTION, where,
                                 lambda indent: [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"])
    elif is_solution_cell(cell):
        raise ValueError(f"{where} is an nbgrader solution cell without a {BEGIN_SOLUTION!r} region")
    lines = _replace_regions(lines, BEGIN_HIDDEN, END_HIDDEN, where)
    lines = [line for line in lines if line.strip() != NBVAL_MARKER]
    cell.source = "\n".join(lines)
    nbgrader = cell.metadata.get("nbgrader", {})
    if (nbgrader.get("solution") or nbgrader.get("grade")) and RUN_ON not in cell.metadata.get("tags", []):
        cell.metadata["tags"] = [*cell.metadata.get("tags", []), RUN_ON]
    return cell


def reveals_solution(cell) -> bool:
    return REVEAL in cell.metadata.get("tags", [])


def headings(source: str) -> list[str]:
    """The text of the markdown headings in ``source``, in order."""
    return [line.lstrip("#").strip() for line in source.split("\n") if line.startswith("#")]


def without_solutions(nb, name: str):
    """A copy of the chapter ``nb`` (file name ``name``) without its cells tagged ``solution-reveal``: each run of
    them becomes one markdown note naming the chapter and the section (the run's own heading, or the last one
    above it) where the worked solution is. A tagged exercise or graded cell is a ValueError."""
    out, section = copy.deepcopy(nb), ""
    out.cells = []
    for index, cell in enumerate(nb.cells):
        own = headings(cell.source) if cell.cell_type == "markdown" else []
        if not reveals_solution(cell):
            out.cells.append(copy.deepcopy(cell))
        elif is_solution_cell(cell) or cell.metadata.get("nbgrader", {}).get("grade"):
            raise ValueError(f"{name}, cell {index} is tagged {REVEAL!r} but is an exercise or a graded cell, "
                             "which every copy keeps")
        elif not (index and reveals_solution(nb.cells[index - 1])):
            note = REVEAL_NOTE.format(name=name, section=(own or [section])[0])
            out.cells.append(new_markdown_cell(note, id=f"{cell.id}-note"))
        section = (own or [section])[-1]
    return out


def student_notebook(nb, name: str):
    """The student copy of the solution notebook ``nb`` (file name ``name``) as a new notebook."""
    student = copy.deepcopy(nb)
    student.cells = [student_cell(cell, f"{name}, cell {index}") for index, cell in enumerate(nb.cells)]
    student = without_solutions(student, name)
    title = next((cell for cell in student.cells if cell.cell_type == "markdown"), None)
    if title is not None:
        first, _, rest = title.source.partition("\n")
        title.source = f"{first} (student copy)\n{rest}".rstrip("\n") + "\n\n" + STUDENT_NOTE.format(name=name)
    return student


def student_text(solution_path: Path) -> str:
    """The bytes (as text) of the student copy of ``solution_path``: nbformat's JSON, one final newline."""
    nb = nbformat.read(solution_path, as_version=4)
    return nbformat.writes(student_notebook(nb, solution_path.name)).rstrip("\n") + "\n"


def student_name(solution_path: Path) -> str:
    """``03_gru_scratch_student.ipynb`` for ``03_gru_scratch.ipynb``."""
    return f"{Path(solution_path).stem}{STUDENT_SUFFIX}.ipynb"


def sha256(data: str | bytes) -> str:
    """The SHA-256 of ``data`` (text as UTF-8), as recorded in :data:`MANIFEST`."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def chapters_with_exercises(notebooks_dir: Path) -> list[Path]:
    """The chapters ``NN_name.ipynb`` of ``notebooks_dir`` with at least one exercise (a ValueError if none)."""
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder} {'is a file' if folder.exists() else 'does not exist'}; expected the folder of "
                         "the chapter notebooks (NN_name.ipynb), such as notebooks/")
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    chapters = [path for path in paths if has_exercises(nbformat.read(path, as_version=4))]
    if not chapters:
        raise ValueError(f"{folder} holds {len(paths)} chapter notebook(s) (NN_name.ipynb), none with an exercise "
                         "(an nbgrader solution cell); expected the course's notebooks/ folder")
    return chapters


# ---------- generated files, recorded so that edited ones are never overwritten ----------

class ManifestError(RuntimeError):
    """``.generated.json`` cannot be read: without it, edited files cannot be told from generated ones."""


class EditedSinceGenerated(RuntimeError):
    """A file on disk differs from what was generated last time: it holds someone's work."""


class StudentCopyEdited(EditedSinceGenerated):
    """A student copy was edited since it was generated."""


def read_manifest(directory: Path, *, force: bool = False, rerun: str = RERUN) -> dict[str, str]:
    """The recorded SHA-256 of each file generated in ``directory`` (by path relative to it); with ``force``
    an unreadable record counts as empty, without it the error names ``rerun``, the command that forces."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
            raise ValueError("expected an object mapping file names to SHA-256 digests")
        return manifest
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        if force:
            return {}
        raise ManifestError(f"{path} is corrupted ({type(err).__name__}: {err}); it records which files were "
                            f"generated and which were edited since. Run `{rerun}` to rewrite it with the files "
                            "(this overwrites any edits).") from err


def edited_files(directory: Path, contents: dict, manifest: dict[str, str]) -> list[Path]:
    """The files of ``contents`` (name -> bytes, or None for a file to remove) on disk in ``directory`` that
    are neither what was generated last time nor what would be written now."""
    edited = []
    for name, data in contents.items():
        path = Path(directory) / name
        if path.exists():
            on_disk = path.read_bytes()
            if sha256(on_disk) != manifest.get(name) and on_disk != data:
                edited.append(path)
    return edited


def write_generated(directory: Path, contents: dict[str, bytes], *, rerun: str, force: bool = False,
                    replace=(), edited_error: type[EditedSinceGenerated] = EditedSinceGenerated) -> dict[str, str]:
    """Write ``contents`` (path relative to ``directory`` -> bytes), record each file's SHA-256 in
    ``directory/.generated.json`` and remove the files recorded there under a folder of ``replace`` that
    ``contents`` no longer has; return name -> "wrote", "unchanged" or "removed". No other file is touched.

    When one of these files was edited since it was generated (or is there, unrecorded, with other bytes),
    write nothing and raise ``edited_error``, unless ``force``; ``rerun`` is the command that forces."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file; expected a folder to write into (it is made if missing)")
    manifest = read_manifest(directory, force=force, rerun=rerun)
    folders = tuple(f"{Path(folder).as_posix()}/" for folder in replace)
    changes = contents | {name: None for name in manifest if name.startswith(folders) and name not in contents}
    edited = [] if force else edited_files(directory, changes, manifest)
    if edited:
        raise edited_error(f"{', '.join(map(str, edited))}: edited since it was generated; not overwritten. "
                           f"Save your work elsewhere, or overwrite it with `{rerun}`.")
    directory.mkdir(parents=True, exist_ok=True)
    status = {}
    for name, data in changes.items():
        path = directory / name
        if data is None:
            del manifest[name]
            if path.exists():
                path.unlink()
                status[name] = "removed"
            continue
        status[name] = "unchanged" if path.exists() and path.read_bytes() == data else "wrote"
        if status[name] == "wrote":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest[name] = sha256(data)
    (directory / MANIFEST).write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n", encoding="utf-8")
    return status


def generate(notebooks_dir: Path, student_dir: Path, *, force: bool = False) -> dict[str, str]:
    """Write the student copy of every chapter with exercises; return ``{file name: "wrote"|"unchanged"}``.

    Raises :class:`StudentCopyEdited` (and writes nothing) when a copy was edited since it was generated,
    unless ``force``; a ValueError (and writes nothing) when ``notebooks_dir`` holds no chapter with exercises
    or ``student_dir`` is a file.
    """
    contents = {student_name(path): student_text(path).encode() for path in chapters_with_exercises(notebooks_dir)}
    return write_generated(student_dir, contents, rerun=RERUN, force=force, edited_error=StudentCopyEdited)


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m utils.assignments",
                            description="Write the student copies of the chapters with exercises.")
    parser.add_argument("--force", action="store_true", help="overwrite student copies edited since generated")
    parser.add_argument("--notebooks", type=Path, default=repo_root() / "notebooks",
                        help="the folder of the chapter notebooks (default: the course's notebooks/)")
    parser.add_argument("--out", type=Path, default=None, help="default: NOTEBOOKS/student")
    args = parser.parse_args(argv)
    try:
        status = generate(args.notebooks, args.out or args.notebooks / "student", force=args.force)
    except (StudentCopyEdited, ManifestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as error:
        fail(str(error))
    for name, what in status.items():
        print(f"{what:9s} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
