"""Progress for long cells and commands: a text bar with what is done, what is left and the time left.

One helper, so that every loop over seeds, configurations or epochs looks the same in a terminal, in
JupyterLab and in a stored notebook: plain text on standard output (a widget would show nothing on the web),
redrawn at most every ``mininterval`` seconds so that a stored notebook stays small.
"""
import sys

from tqdm import tqdm

from utils.paths import storing


def progress_bar(iterable=None, *, total=None, desc="", disable=False, mininterval=2.0, unit="it"):
    """A tqdm text bar over ``iterable`` (or of ``total`` steps, advanced with ``.update(n)``), showing
    ``desc``, done/total, elapsed time and an estimate of the time left. While a chapter is stored (nobody
    watches), it prints its start and its end only."""
    return tqdm(iterable, total=total, desc=desc, disable=disable, file=sys.stdout,
                mininterval=float("inf") if storing() else mininterval,
                unit=unit, ncols=100)
