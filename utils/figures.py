"""One helper that saves the course's figures under stable names."""
import re
from pathlib import Path

from utils.paths import figures_dir, repo_root

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def save_figure(fig, name: str, *, fmt: str = "png", dpi: int = 120) -> Path:
    """Save ``fig`` (a matplotlib Figure) as ``figures/<name>.<fmt>`` and return the path.

    ``name`` is a stable lowercase name such as ``"01_gradient_norms"`` (chapter number first), so that
    re-running a notebook overwrites its figure instead of adding a new one.
    """
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r}: expected lowercase letters, digits, '_' or '-', "
                         "e.g. '03_gate_heatmap'")
    if fmt not in {"png", "svg", "pdf"}:
        raise ValueError(f"figure format {fmt!r}: expected 'png', 'svg' or 'pdf'")
    path = figures_dir() / f"{name}.{fmt}"
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return path


def figures_location() -> str:
    """Where this run's figures go: relative to the course's root (``figures/`` when a chapter is stored,
    ``build/figures/`` otherwise) when the notebook runs inside the course's folder, else the absolute path
    (Colab, where the notebook is not in the clone). A chapter prints it in its first cell: the folder is
    checked writable there, so a read-only one is an error before any training runs."""
    folder, root = figures_dir(), repo_root()
    if Path.cwd().resolve().is_relative_to(root) and folder.is_relative_to(root):
        return f"{folder.relative_to(root)}/"
    return f"{folder}/"
