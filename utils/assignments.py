"""Student copies of the chapters: ``python -m utils.assignments [--force]`` (``make student``).

A solution notebook marks what a student writes with nbgrader's syntax: a code cell whose metadata holds
``"nbgrader": {"solution": true, ...}`` contains ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` (its hints
are comments above the region). For every chapter ``notebooks/NN_x.ipynb`` with such a cell, this writes
``notebooks/student/NN_x_student.ipynb``, the same stub that nbgrader's ``generate_assignment`` makes:

- each solution region replaced by ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the region's
  indentation; the code before and after it, hints included, stays;
- ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` removed, delimiters included;
- outputs, execution counts and execution metadata cleared, ``# NBVAL_CHECK_OUTPUT`` lines dropped;
- the title says "student copy", and the file name ends in ``_student``, wherever it is opened.

The output is deterministic (same input, same bytes). ``notebooks/student/.generated.json`` records the
SHA-256 of each generated file; a student copy whose bytes differ from its record was edited after it was
generated and is never overwritten unless ``--force`` is given.
"""
import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

import nbformat

from utils.paths import repo_root

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
NBVAL_MARKER = "# NBVAL_CHECK_OUTPUT"  # only meaningful in the stored solution notebooks
MANIFEST = ".generated.json"
STUDENT_SUFFIX = "_student"
STUDENT_NOTE = ("> **Student copy**, generated from `notebooks/{name}` by `make student`. Each exercise cell "
                "raises `NotImplementedError` until you write its code; the graded cell after it checks your "
                "code and says in one line what passed or what is wrong. The worked solutions are in "
                "`notebooks/{name}`.")


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
    return cell


def student_notebook(nb, name: str):
    """The student copy of the solution notebook ``nb`` (file name ``name``) as a new notebook."""
    student = copy.deepcopy(nb)
    student.cells = [student_cell(cell, f"{name}, cell {index}") for index, cell in enumerate(nb.cells)]
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


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chapters_with_exercises(notebooks_dir: Path) -> list[Path]:
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    return [path for path in paths if has_exercises(nbformat.read(path, as_version=4))]


class ManifestError(RuntimeError):
    """``.generated.json`` cannot be read: without it, edited copies cannot be told from generated ones."""


def read_manifest(student_dir: Path, *, force: bool = False) -> dict[str, str]:
    """The recorded SHA-256 of each generated copy; with ``force`` an unreadable record counts as empty."""
    path = Path(student_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
            raise ValueError("expected an object mapping file names to SHA-256 digests")
        return manifest
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        if force:
            return {}
        raise ManifestError(f"{path} is corrupted ({type(err).__name__}: {err}); it records which student copies "
                            "were generated and which were edited. Run `python -m utils.assignments --force` to "
                            "rewrite it with the copies (this overwrites any student's edits).") from err


def edited_copies(student_dir: Path, names, manifest: dict[str, str], texts: dict[str, str]) -> list[Path]:
    """Student copies on disk that are neither what was generated last time nor what would be written now
    (a copy that is not valid UTF-8 any more counts as edited: it is not what was generated)."""
    edited = []
    for name in names:
        path = Path(student_dir) / name
        if path.exists():
            on_disk = path.read_bytes()
            if hashlib.sha256(on_disk).hexdigest() != manifest.get(name) and on_disk != texts[name].encode():
                edited.append(path)
    return edited


def generate(notebooks_dir: Path, student_dir: Path, *, force: bool = False) -> dict[str, str]:
    """Write the student copy of every chapter with exercises; return ``{file name: "wrote"|"unchanged"}``.

    Raises :class:`StudentCopyEdited` (and writes nothing) when a copy was edited since it was generated,
    unless ``force``.
    """
    student_dir = Path(student_dir)
    texts = {student_name(path): student_text(path) for path in chapters_with_exercises(notebooks_dir)}
    manifest = read_manifest(student_dir, force=force)
    edited = [] if force else edited_copies(student_dir, texts, manifest, texts)
    if edited:
        names = ", ".join(str(path) for path in edited)
        raise StudentCopyEdited(f"{names}: edited since it was generated; not overwritten. Save your work "
                                f"elsewhere, or overwrite it with `python -m utils.assignments --force`.")
    student_dir.mkdir(parents=True, exist_ok=True)
    status = {}
    for name, text in texts.items():
        path = student_dir / name
        status[name] = "unchanged" if path.exists() and path.read_bytes() == text.encode() else "wrote"
        if status[name] == "wrote":
            path.write_text(text)
        manifest[name] = sha256(text)
    (student_dir / MANIFEST).write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the student copies of the chapters with exercises.")
    parser.add_argument("--force", action="store_true", help="overwrite student copies edited since generated")
    parser.add_argument("--notebooks", type=Path, default=repo_root() / "notebooks")
    parser.add_argument("--out", type=Path, default=None, help="default: NOTEBOOKS/student")
    args = parser.parse_args(argv)
    try:
        status = generate(args.notebooks, args.out or args.notebooks / "student", force=args.force)
    except (StudentCopyEdited, ManifestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, what in status.items():
        print(f"{what:9s} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
