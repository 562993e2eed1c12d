"""Where the course keeps its files: the repository root, the data cache, throw-away outputs and figures.

The paths do not depend on the directory a notebook runs from. In a source checkout (the normal case,
``pip install -e .`` by ``make``) they are found next to this package; an installed copy without the
checkout (Colab) uses the current directory instead. ``GRU_COURSE_ROOT`` overrides both.

A chapter run by a student, in JupyterLab or under a grader, writes no tracked file: its figures go to the
git-ignored ``build/figures/``, or to ``$GRU_COURSE_OUTPUT/figures/`` when that variable is set (a relative
path counts from the notebook's folder, so each student's grading run gets its own folder). Only a chapter
stored on purpose (``make run-notebook``, which sets ``GRU_COURSE_STORE=1``) writes ``figures/``.
"""
import os
from pathlib import Path

from utils.mode import quick_mode

ROOT_ENV = "GRU_COURSE_ROOT"
OUTPUT_ENV = "GRU_COURSE_OUTPUT"
STORE_ENV = "GRU_COURSE_STORE"


def repo_root() -> Path:
    """The course's root folder (the one that holds ``notebooks/`` and ``utils/``)."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


def writable_dir(path: Path, what: str) -> Path:
    """``path`` as an existing folder this process can write to (created if missing); otherwise an error
    that says what is wrong and how to fix it, before any work that would be lost."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, but {what} must be a folder there: move the file away")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create {path} for {what} ({type(err).__name__}: {err}): create it, or "
                              "make its parent folder writable") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"{path} is not writable, and {what} go there: make it writable "
                              f"(chmod u+w {path})")
    return path


def data_dir() -> Path:
    """The git-ignored download cache ``data/`` at the root (created on first use)."""
    return writable_dir(repo_root() / "data", "the download cache")


def build_dir() -> Path:
    """The git-ignored folder for throw-away outputs: quick runs, caches, a student's figures."""
    return writable_dir(repo_root() / "build", "throw-away outputs")


def storing() -> bool:
    """True while a chapter is being stored on purpose: ``make run-notebook`` sets ``GRU_COURSE_STORE=1`` (and
    runs in full mode; a quick run never stores)."""
    return os.environ.get(STORE_ENV, "") == "1" and not quick_mode()


def output_dir() -> Path:
    """Where a run that is not being stored writes: ``$GRU_COURSE_OUTPUT`` if set, else ``build/``."""
    if os.environ.get(OUTPUT_ENV):
        return writable_dir(Path(os.environ[OUTPUT_ENV]).resolve(), "this run's outputs")
    return build_dir()


def figures_dir() -> Path:
    """``figures/`` while a chapter is being stored; otherwise ``figures/`` under :func:`output_dir`, so that
    a student's or a test's run never touches the stored figures. Checked writable on every call (a chapter
    calls it in its first cell, so a read-only folder is an error before any training)."""
    if storing():
        return writable_dir(repo_root() / "figures", "the stored figures")
    return writable_dir(output_dir() / "figures", "figures")
