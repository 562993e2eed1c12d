import matplotlib
import pytest
from matplotlib import pyplot as plt

from utils import figures, mode, paths

matplotlib.use("Agg")


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), ("0", False), ("", False), ("off", False)])
def test_quick_mode_reads_the_switch(monkeypatch, value, quick):
    monkeypatch.setenv(mode.QUICK_ENV, value)
    assert mode.quick_mode() is quick
    assert mode.pick("q", "f") == ("q" if quick else "f")
    assert mode.mode_name() == ("quick" if quick else "full")


def test_unknown_switch_value_is_an_error(monkeypatch):
    monkeypatch.setenv(mode.QUICK_ENV, "maybe")
    with pytest.raises(ValueError, match="GRU_COURSE_QUICK='maybe'"):
        mode.quick_mode()


def test_repo_root_is_the_checkout_whatever_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    root = paths.repo_root()
    assert (root / "utils" / "paths.py").is_file() and (root / "notebooks").is_dir()
    assert paths.data_dir() == root / "data"


def test_figures_go_to_figures_only_while_a_chapter_is_stored(course_root, monkeypatch, tmp_path):
    fig = plt.figure()
    monkeypatch.delenv(paths.STORE_ENV, raising=False)
    monkeypatch.delenv(paths.OUTPUT_ENV, raising=False)
    where = {}
    for case, quick, store in (("quick", "1", "0"), ("student", "0", "0"), ("quick, store", "1", "1"),
                               ("stored", "0", "1")):
        monkeypatch.setenv(mode.QUICK_ENV, quick)
        monkeypatch.setenv(paths.STORE_ENV, store)
        where[case] = figures.save_figure(fig, "99_test")
    monkeypatch.setenv(paths.STORE_ENV, "0")
    monkeypatch.setenv(paths.OUTPUT_ENV, "graded")  # relative: from the notebook's folder, one per student
    monkeypatch.chdir(tmp_path)
    where["grader"] = figures.save_figure(fig, "99_test", fmt="svg")
    plt.close(fig)
    build = course_root / "build" / "figures" / "99_test.png"
    assert where == {"quick": build, "student": build, "quick, store": build,
                     "stored": course_root / "figures" / "99_test.png",
                     "grader": tmp_path / "graded" / "figures" / "99_test.svg"}
    assert all(path.stat().st_size > 0 for path in where.values())


def test_saving_twice_gives_identical_bytes(course_root):
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    first = figures.save_figure(fig, "99_stable").read_bytes()
    second = figures.save_figure(fig, "99_stable").read_bytes()
    plt.close(fig)
    assert first == second


@pytest.mark.parametrize("name, fmt, message", [("Bad Name", "png", "figure name"), ("ok", "jpg", "figure format")])
def test_bad_figure_arguments_are_errors(course_root, name, fmt, message):
    fig = plt.figure()
    with pytest.raises(ValueError, match=message):
        figures.save_figure(fig, name, fmt=fmt)
    plt.close(fig)
