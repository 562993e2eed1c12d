"""Where the course keeps its files: the repository root, the data cache and the figures.

The paths do not depend on the directory a notebook runs from. In a source checkout (the normal case,
``pip install -e .`` by ``make``) they are found next to this package; an installed copy without the
checkout (Colab) uses the current directory instead. ``GRU_COURSE_ROOT`` overrides both.
"""
import os
from pathlib import Path

from utils.mode import quick_mode

ROOT_ENV = "GRU_COURSE_ROOT"


def repo_root() -> Path:
    """The course's root folder (the one that holds ``notebooks/`` and ``utils/``)."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


def data_dir() -> Path:
    """The git-ignored download cache ``data/`` at the root (created on first use)."""
    path = repo_root() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_dir() -> Path:
    """The git-ignored folder for outputs of quick runs, caches and other throw-away files."""
    path = repo_root() / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    """``figures/`` in full mode; in quick mode ``build/figures/``, so tests never touch stored figures."""
    path = build_dir() / "figures" if quick_mode() else repo_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
