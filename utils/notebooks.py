"""Notebook tooling: the Colab setup cell every chapter starts with, and full-mode execution.

``python -m utils.notebooks run NB [NB ...]`` executes notebooks top to bottom in full mode (in their own
folder, with this interpreter's kernel) and stores their outputs in place; runs on one machine take
turns through a lock file, so timings are not disturbed by another full run.
``python -m utils.notebooks sync-setup-cell NB [NB ...]`` rewrites their first cell from
:func:`setup_cell_source`.
"""
import fcntl
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from utils.cli import ArgumentParser, fail
from utils.mode import QUICK_ENV
from utils.paths import OUTPUT_ENV, STORE_ENV, build_dir

# The one place that names the course's repository.
REPO_URL = "https://github.com/gru-course/gru-course"
COLAB_CHECKOUT = "/content/gru-course"
CHECKOUT = Path(__file__).resolve().parents[1]  # where requirements.txt lies beside utils/
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}  # as ipykernel names it
# What the chapters import at run time and Colab's runtime lacks (tests/data/colab-pip-freeze.txt, checked by
# tests/test_colab.py), besides d2l (installed without its outdated pins) and the course itself.
COLAB_LACKS = ("ray",)


def requirement(name: str, file: str = "requirements.txt") -> str:
    """The requirement line of distribution ``name`` (with its version range) in one of the requirements files
    of the checkout that holds this package."""
    for line in (CHECKOUT / file).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if re.match(rf"{re.escape(name)}\b(?![-_.])", line, re.IGNORECASE):
            return line
    raise LookupError(f"{file} names no requirement {name!r}")


def d2l_requirement() -> str:
    """The pinned d2l requirement, read from ``requirements-nodeps.txt``."""
    return requirement("d2l", "requirements-nodeps.txt")


def full_run_minutes(nb) -> str:
    """How long the notebook's stored full run took, as its metadata records it (``utils.notebooks run``)."""
    run = nb.metadata.get("gru_course", {})
    if "full_run_seconds" not in run:
        return "an unmeasured time"
    minutes = round(run["full_run_seconds"] / 60)
    length = "under a minute" if minutes < 1 else f"about {minutes} minute{'s' if minutes > 1 else ''}"
    return f"{length} on a {run['cores']}-core CPU"


def setup_cell_source(full_run: str = "an unmeasured time", repo_url: str = REPO_URL,
                      checkout: str = COLAB_CHECKOUT) -> str:
    """The first code cell of every chapter: the quick-mode switch and, in Colab only, the course's code and
    the packages Colab lacks (run twice, it installs nothing new); elsewhere ``make`` has installed both."""
    packages = " ".join(f"'{requirement(name)}'" for name in COLAB_LACKS)
    lacks = ", ".join(COLAB_LACKS)
    return "\n".join([
        f"# Full mode (the stored results) takes {full_run}. QUICK = True runs every training at its",
        "# smallest size instead: the same code, much faster, with numbers too rough to read.",
        "QUICK = False",
        "import os, sys",
        "if QUICK:",
        "    os.environ[\"GRU_COURSE_QUICK\"] = \"1\"  # restart the kernel to go back to full mode",
        "if \"google.colab\" in sys.modules:  # Colab: fetch the course and what Colab lacks",
        f"    if not os.path.isdir(\"{checkout}\"):",
        f"        !git clone --quiet --depth 1 {repo_url} {checkout}",
        f"    %pip install --quiet {packages}",
        f"    %pip install --quiet --no-deps {d2l_requirement()} {checkout}",
        f"    os.environ[\"GRU_COURSE_ROOT\"] = \"{checkout}\"",
        f"    print(\"Colab: the course in {checkout}; installed {lacks}, {d2l_requirement()} and the course\")",
    ])


def first_code_cell(nb):
    """The notebook's first code cell (where the setup cell belongs)."""
    cell = next((cell for cell in nb.cells if cell.cell_type == "code"), None)
    if cell is None:
        raise ValueError("the notebook has no code cell; a chapter starts with its title, then the setup cell")
    return cell


def sync_setup_cell(path: Path) -> bool:
    """Make the notebook's first code cell the setup cell (with the time its stored full run took); return True
    if the file changed."""
    nb = nbformat.read(path, as_version=4)
    try:
        cell = first_code_cell(nb)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    source = setup_cell_source(full_run_minutes(nb))
    if cell.source == source:
        return False
    cell.source = source
    nbformat.write(nb, path)
    return True


def execute(path: Path, timeout: int = 3600) -> float:
    """Execute a notebook in full mode, storing its figures (``GRU_COURSE_STORE=1``), and store its outputs
    in place, with the time it took in its metadata (the setup cell states it) and the kernel's own name (what
    JupyterLab writes, so that an opened chapter is not already modified); return the seconds it took. The
    kernel gets its own environment: the caller's is left as it was."""
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
    nb.metadata["gru_course"] = {"full_run_seconds": round(seconds), "cores": os.cpu_count()}
    nb.metadata["kernelspec"] = KERNELSPEC
    first_code_cell(nb).source = setup_cell_source(full_run_minutes(nb))
    nbformat.write(nb, path)
    return seconds


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m utils.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "sync-setup-cell"])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        fail(f"no notebook at {', '.join(missing)}")
    for path in args.notebooks:
        if args.command == "run":
            print(f"{path}: executed in full mode in {execute(path):.0f} s", flush=True)
        else:
            try:
                print(f"{path}: {'updated' if sync_setup_cell(path) else 'already up to date'}")
            except ValueError as err:
                fail(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
