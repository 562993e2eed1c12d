"""Shared fixtures: an isolated course root, so that tests never touch the real data/ or figures/."""
import pytest


@pytest.fixture
def course_root(tmp_path, monkeypatch):
    """A temporary GRU_COURSE_ROOT (data/, build/ and figures/ go there)."""
    monkeypatch.setenv("GRU_COURSE_ROOT", str(tmp_path))
    return tmp_path
