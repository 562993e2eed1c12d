"""A claim in a chapter's prose, checked by the run that stores it.

``claim(condition, statement)`` prints ``✓ statement`` when the condition holds and stops the run with an
error naming the statement when it does not, so a stored chapter cannot say what its own numbers contradict.
Quick mode trains too little for the full run's conclusions: there it prints the statement as not checked.
"""
from utils.mode import quick_mode


class ClaimFailed(AssertionError):
    """A chapter's prose says something its own run contradicts."""


def claim(condition, statement: str) -> None:
    """Check ``statement`` (what the prose says) against ``condition`` (what the run measured).

    Returns nothing, so that a claim on a cell's last line adds no output beside its printed line.
    """
    if quick_mode():
        print(f"(quick mode, not checked) {statement}")
        return
    if not condition:
        raise ClaimFailed(f"the run contradicts the chapter's claim: {statement}")
    print(f"✓ {statement}")
