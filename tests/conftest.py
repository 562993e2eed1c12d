"""Shared fixtures: an isolated course root, so that tests never touch the real data/ or figures/; one torch
thread per pytest-xdist worker, so that the workers (one per core) do not fight over every small matrix
product."""
import os

import pytest


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch
        torch.set_num_threads(1)


@pytest.fixture
def course_root(tmp_path, monkeypatch):
    """A temporary GRU_COURSE_ROOT (data/, build/ and figures/ go there)."""
    monkeypatch.setenv("GRU_COURSE_ROOT", str(tmp_path))
    return tmp_path
