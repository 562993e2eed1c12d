"""Exercise 2's sweeps as studies of the runner: presets, the trial, and the command line."""
import math

import pytest

from utils import runner, sweep
from utils.runner import results_table


def test_the_presets_are_the_published_grid_and_the_course_budget():
    published, course = sweep.study("published"), sweep.study("course")
    assert len(published.configs()) == 100 and published.grid == course.grid
    assert published.fixed["batch_size"] == 1024 and published.fixed["max_epochs"] == 100
    assert len(course.seeds) >= 3 and course.fixed["batch_size"] == sweep.COURSE_BUDGET["batch_size"]
    check = sweep.study("published-check")
    assert len(check.configs()) >= 4 and len(check.seeds) >= 3 and check.fixed == published.fixed
    assert all(study.fixed["held_out_start"] >= study.fixed["num_train"] + max(study.grid["num_steps"])
               for study in (published, course, check))


def test_overrides_replace_grid_values_settings_and_seeds():
    s = sweep.study("quick", num_steps=[4], lr=[2.0], max_epochs=3, seeds=[5, 6])
    assert s.grid["num_steps"] == [4] and s.grid["lr"] == [2.0] and s.fixed["max_epochs"] == 3
    assert s.seeds == (5, 6) and s.trial.__module__ == "utils.sweep"
    with pytest.raises(ValueError, match="unknown setting 'depth'"):
        sweep.study("quick", depth=2)
    with pytest.raises(ValueError, match="unknown preset"):
        sweep.study("huge")


def quick_config(**changes):
    return {**sweep.DEFAULTS, "num_steps": 4, "num_hiddens": 5, "lr": 1.0, "batch_size": 8, "max_epochs": 1,
            "num_train": 32, "seed": 0, **changes}


def test_train_config_trains_and_scores_one_configuration_on_the_held_out_text():
    row, again = sweep.train_config(quick_config()), sweep.train_config(quick_config())
    assert row["held_out_perplexity"] == again["held_out_perplexity"] and row["sample"] == again["sample"]  # seeded
    assert 1 < row["held_out_perplexity"] < math.inf
    vocab, h = 28, 5
    assert row["num_params"] == 3 * (h * vocab + h * h + 2 * h) + h * vocab + vocab  # nn.GRU + output layer
    assert row["sample"].startswith("time traveller") and len(row["sample"]) == len("time traveller") + 50
    assert row["cpu_seconds"] > 0 and row["train_seconds"] > 0
    assert sweep.train_config(quick_config(seed=1))["held_out_perplexity"] != row["held_out_perplexity"]


def test_the_held_out_text_may_not_overlap_the_training_windows():
    with pytest.raises(ValueError, match="inside the training windows"):
        sweep.train_config(quick_config(held_out_start=30))


def test_quick_mode_runs_the_quick_grid_into_build(course_root, monkeypatch, capsys):
    seen = {}

    def fake_run(study, path, **kwargs):
        seen.update(study=study, path=path)
        return runner.pd.DataFrame({"status": ["ok"] * len(study.trials())})
    monkeypatch.setattr(sweep, "run_study", fake_run)
    monkeypatch.setenv("GRU_COURSE_QUICK", "1")
    assert sweep.main([]) == 0
    assert seen["study"].spec() == sweep.study("quick").spec()
    assert seen["path"] == course_root / "build" / "06_quick.jsonl"
    monkeypatch.setenv("GRU_COURSE_QUICK", "0")
    sweep.main([])
    assert seen["study"].spec() == sweep.study("published").spec()
    assert seen["path"] == course_root / "notebooks" / "06_published.jsonl"


@pytest.mark.parametrize("args", [["--cpus-per-trial", "0"], ["--num-steps", "0"], ["--preset", "huge"],
                                  ["--seeds", "-1"]])
def test_command_line_rejects_bad_arguments(tmp_path, args, monkeypatch):
    monkeypatch.setattr(sweep, "run_study", lambda *a, **k: pytest.fail("trained despite bad arguments"))
    with pytest.raises((SystemExit, ValueError)):
        sweep.main(args + ["--results", str(tmp_path / "x.jsonl")])


def test_command_line_trains_through_the_runner_and_resumes(tmp_path, capsys):
    path = tmp_path / "cli.jsonl"
    args = ["--preset", "quick", "--num-steps", "4", "--num-hiddens", "3", "--lr", "2", "--seeds", "0",
            "--results", str(path)]
    assert sweep.main(args) == 0
    table = results_table(path, sweep.study("quick", num_steps=[4], num_hiddens=[3], lr=[2.0], seeds=[0]),
                          complete=True)
    assert len(table) == 1 and table.held_out_perplexity.iloc[0] > 1
    assert sweep.main(args) == 0
    assert "1 trials in" in capsys.readouterr().out.splitlines()[-1]
