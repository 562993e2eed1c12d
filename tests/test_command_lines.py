"""The command lines of utils (assignments, grading, bench, envcheck): a wrong command line gets one line
``error: ...`` on stderr and exit status 2, without a traceback and without writing anything; rerunning
``grading course`` never loses an instructor's work."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from utils import assignments, bench, cli, envcheck, grading
from utils.assignments import EditedSinceGenerated

ROOT = Path(__file__).resolve().parents[1]
MAINS = {"assignments": (assignments.main, []), "grading": (grading.main, ["course", "somewhere"]),
         "bench": (bench.main, []), "envcheck": (lambda argv: envcheck.main(argv=argv), [])}  # main, a valid start


def run_module(module, *args, cwd):
    """``python -m utils.<module> ARGS`` in ``cwd``, with this checkout on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", f"utils.{module}", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def refused(main, argv, capsys, status=2) -> str:
    """The one line that ``main(argv)`` prints to stderr when it exits with ``status``; nothing on stdout."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == status and out == "", (exit_.value.code, out)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def chapter(folder: Path, name="99_test.ipynb", answer="2 * x") -> Path:
    """A chapter with one exercise and its graded check, as nbgrader wants them."""
    meta = {"grade_id": "double", "locked": False, "schema_version": 3, "solution": True, "grade": False,
            "task": False}
    solution = new_code_cell(f"def double(x):\n    # Hint: twice x\n    ### BEGIN SOLUTION\n    return {answer}\n"
                             "    ### END SOLUTION")
    solution.metadata["nbgrader"] = meta
    check = new_code_cell("assert double(1) == 2")
    check.metadata["nbgrader"] = {**meta, "grade_id": "test_double", "solution": False, "grade": True,
                                  "locked": True, "points": 1}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 99 · Test"), solution, check]), folder / name)
    return folder / name


# ---------- one helper, one line ----------

def test_fail_prints_one_line_and_exits_2(capsys):
    assert refused(cli.fail, "expected a folder,\ngot a file", capsys) == "error: expected a folder, got a file\n"


@pytest.mark.parametrize("name", MAINS)
def test_every_command_line_answers_an_unknown_option_in_one_line(name, capsys):
    main, argv = MAINS[name]
    err = refused(main, [*argv, "--no-such-option"], capsys)
    assert "unrecognized arguments: --no-such-option" in err and f"utils.{name}" in err and "--help" in err


def test_a_subcommands_own_error_is_one_line_too(capsys):
    assert "required: directory" in refused(grading.main, ["course"], capsys)


# ---------- utils.assignments ----------

def test_assignments_refuses_a_notebooks_folder_that_does_not_exist_and_creates_nothing(tmp_path):
    result = run_module("assignments", "--notebooks", tmp_path / "typo" / "nb", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr == f"error: {tmp_path / 'typo' / 'nb'} does not exist; expected the folder of the chapter " \
                            "notebooks (NN_name.ipynb), such as notebooks/\n"
    assert not (tmp_path / "typo").exists()


def test_assignments_refuses_a_folder_without_chapter_notebooks(tmp_path, capsys):
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "notes.ipynb").write_text("{}")
    assert "holds 0 chapter notebook(s)" in refused(assignments.main, ["--notebooks", str(tmp_path / "nb")], capsys)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "nb" / "01_plain.ipynb")
    assert "holds 1 chapter notebook(s) (NN_name.ipynb), none with an exercise" in refused(
        assignments.main, ["--notebooks", str(tmp_path / "nb")], capsys)
    assert sorted(path.name for path in (tmp_path / "nb").iterdir()) == ["01_plain.ipynb", "notes.ipynb"]


def test_assignments_refuses_an_out_that_is_a_file(tmp_path, capsys):
    chapter(tmp_path / "nb")
    (tmp_path / "out").write_text("mine")
    err = refused(assignments.main, ["--notebooks", str(tmp_path / "nb"), "--out", str(tmp_path / "out")], capsys)
    assert f"{tmp_path / 'out'} is a file; expected a folder" in err
    assert (tmp_path / "out").read_text() == "mine" and not (tmp_path / "nb" / "student").exists()


# ---------- utils.bench ----------

@pytest.mark.parametrize("device", ["meta", "bogus", "cuda:x"])
def test_bench_refuses_a_device_it_cannot_measure_on(device, capsys):
    err = refused(bench.main, ["--quick", "--device", device], capsys)
    assert f"--device: expected the device cpu or cuda, got '{device}'" in err


def test_bench_refuses_cuda_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "torch finds no CUDA GPU on this machine" in refused(bench.main, ["--quick", "--device", "cuda"], capsys)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        bench.measure(bench.TINY, ["nn.GRU"], repeats=1, iters=1, warmup=0, device="cuda")


def test_bench_devices():
    assert bench.bench_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected the device cpu or cuda, got 'meta'"):
        bench.measure(bench.TINY, ["nn.GRU"], repeats=1, iters=1, warmup=0, device="meta")
    if torch.cuda.is_available():
        assert bench.bench_device("cuda").type == "cuda"


# ---------- utils.envcheck ----------

def test_envcheck_help_prints_usage_and_checks_nothing(tmp_path):
    result = run_module("envcheck", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m utils.envcheck")
    assert "print OK or FAIL" in result.stdout and "OK  " not in result.stdout


# ---------- utils.grading ----------

def test_grading_refuses_a_course_directory_that_is_a_file(tmp_path, capsys):
    (tmp_path / "course").write_text("mine")
    err = refused(grading.main, ["course", str(tmp_path / "course"), "--chapters", "3"], capsys)
    assert f"{tmp_path / 'course'} is a file; expected a folder" in err and (tmp_path / "course").read_text() == "mine"


@pytest.mark.parametrize("chapters, message", [
    (["abc"], r"expected chapter numbers such as 3 or 03 (--chapters 3 10), got ['abc']"),
    (["13"], "chapters ['13'] have no exercises; only chapters ['01', "),
])
def test_grading_refuses_chapters_it_cannot_make(chapters, message, tmp_path, capsys):
    assert message in refused(grading.main, ["course", str(tmp_path / "course"), "--chapters", *chapters], capsys)
    assert not (tmp_path / "course").exists()


def test_grading_course_never_loses_an_instructors_work(tmp_path, capsys):
    """The reviewer's case: an edited source notebook and a file added beside it survive a rerun."""
    course = tmp_path / "course"
    assert grading.main(["course", str(course), "--chapters", "3"]) == 0
    source = course / "source" / "ch03" / "03_gru_scratch.ipynb"
    generated, extra = source.read_bytes(), source.parent / "extra_data.csv"
    source.write_text(source.read_text().replace("Hint", "My hint"))
    extra.write_text("x,y\n1,2\n")
    edited = source.read_bytes()
    capsys.readouterr()
    assert grading.main(["course", str(course), "--chapters", "3"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {source}: edited since it was generated; not overwritten. Save your work elsewhere, or "
                   f"overwrite it with `python -m utils.grading course {course} --chapters 3 --force`.\n")
    assert source.read_bytes() == edited and extra.read_text() == "x,y\n1,2\n"
    assert grading.main(["course", str(course), "--chapters", "3", "--force"]) == 0
    assert source.read_bytes() == generated
    assert extra.read_text() == "x,y\n1,2\n"  # never written by the command, never deleted


def test_grading_course_refuses_an_edited_config_and_updates_what_it_wrote(tmp_path):
    notebooks, course = tmp_path / "notebooks", tmp_path / "course"
    chapter(notebooks)
    made = grading.make_course(course, notebooks)
    assert made == {"ch99": course / "source" / "ch99" / "99_test.ipynb"}
    (course / "gradebook.db").write_text("grades")
    chapter(notebooks, answer="x + x")  # the chapter changes: the source that nobody edited follows it
    assert grading.make_course(course, notebooks) == made and "x + x" in made["ch99"].read_text()
    (notebooks / "99_test.ipynb").rename(notebooks / "99_renamed.ipynb")  # its old source goes, nothing else
    (made["ch99"].parent / "data.csv").write_text("1\n")
    assert grading.make_course(course, notebooks) == {"ch99": course / "source" / "ch99" / "99_renamed.ipynb"}
    assert sorted(path.name for path in made["ch99"].parent.iterdir()) == ["99_renamed.ipynb", "data.csv"]
    config = course / grading.CONFIG_FILE
    config.write_text(config.read_text() + "c.Execute.timeout = 60\n")
    with pytest.raises(EditedSinceGenerated, match=r"nbgrader_config\.py: edited since it was generated.*--force"):
        grading.make_course(course, notebooks)
    assert config.read_text().endswith("c.Execute.timeout = 60\n")
    grading.make_course(course, notebooks, force=True)
    assert config.read_text() == grading.CONFIG and (course / "gradebook.db").read_text() == "grades"
