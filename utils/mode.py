"""Quick or full mode: one switch for the size of every training run in the course.

Quick mode (``GRU_COURSE_QUICK=1``) is what the tests and CI use: every notebook runs in seconds.
Full mode (the default) gives the results stored in the notebooks. Both go through the same code; only
the sizes that a notebook passes through :func:`pick` differ.
"""
import os

QUICK_ENV = "GRU_COURSE_QUICK"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def quick_mode() -> bool:
    """True when the environment variable ``GRU_COURSE_QUICK`` asks for quick mode."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV}={value!r}: expected one of {sorted(_TRUE | _FALSE - {''})}")


def pick(quick, full):
    """Return ``quick`` in quick mode and ``full`` otherwise, e.g. ``max_epochs = pick(2, 50)``."""
    return quick if quick_mode() else full


def mode_name() -> str:
    """'quick' or 'full', for printing at the top of a notebook."""
    return "quick" if quick_mode() else "full"
