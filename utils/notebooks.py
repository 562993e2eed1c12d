"""Notebook tooling: the Colab setup cell every chapter starts with, and full-mode execution.

``python -m utils.notebooks run NB [NB ...]`` executes notebooks top to bottom in full mode (in their own
folder, with this interpreter's kernel) and stores their outputs in place; runs on one machine take
turns through a lock file, so timings are not disturbed by another full run.
``python -m utils.notebooks sync-setup-cell NB [NB ...]`` rewrites their first cell from
:func:`setup_cell_source`.
"""
import argparse
import fcntl
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from utils.mode import QUICK_ENV
from utils.paths import OUTPUT_ENV, STORE_ENV, build_dir, repo_root

# The one place that names the course's repository.
REPO_URL = "https://github.com/gru-course/gru-course"
COLAB_CHECKOUT = "/content/gru-course"


def d2l_requirement() -> str:
    """The pinned d2l requirement, read from ``requirements-nodeps.txt``."""
    lines = (line.split("#", 1)[0].strip() for line in (repo_root() / "requirements-nodeps.txt").read_text().splitlines())
    return next(line for line in lines if line.startswith("d2l"))


def setup_cell_source() -> str:
    """The first code cell of every chapter: in Colab it fetches the course and d2l; elsewhere it does
    nothing (``make`` has installed both)."""
    return "\n".join([
        "# Colab only: fetch the course's code and the one package Colab lacks. Elsewhere this does nothing.",
        "import os, sys",
        "if \"google.colab\" in sys.modules:",
        f"    !git clone --quiet --depth 1 {REPO_URL} {COLAB_CHECKOUT}",
        f"    %pip install --quiet --no-deps {d2l_requirement()} {COLAB_CHECKOUT}",
        f"    os.environ[\"GRU_COURSE_ROOT\"] = \"{COLAB_CHECKOUT}\"",
    ])


def first_code_cell(nb):
    return next(cell for cell in nb.cells if cell.cell_type == "code")


def sync_setup_cell(path: Path) -> bool:
    """Make the notebook's first code cell the setup cell; return True if the file changed."""
    nb = nbformat.read(path, as_version=4)
    cell = first_code_cell(nb)
    if cell.source == setup_cell_source():
        return False
    cell.source = setup_cell_source()
    nbformat.write(nb, path)
    return True


def execute(path: Path, timeout: int = 3600) -> float:
    """Execute a notebook in full mode, storing its figures (``GRU_COURSE_STORE=1``), and store its outputs
    in place; return the seconds it took. The kernel gets its own environment: the caller's is left as it
    was."""
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    env = {name: value for name, value in os.environ.items() if name not in (QUICK_ENV, OUTPUT_ENV)}
    env[STORE_ENV] = "1"
    lock_path = build_dir() / "full-run.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
        seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "sync-setup-cell"])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if args.command == "run":
            print(f"{path}: executed in full mode in {execute(path):.0f} s", flush=True)
        else:
            print(f"{path}: {'updated' if sync_setup_cell(path) else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
