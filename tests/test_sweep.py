import csv
import math

import pytest
import torch

from utils import sweep
from utils.sweep import COLUMNS, SweepConfig, default_results_path, grid, read_results, run_sweep, train_config

SETTINGS = dict(batch_size=8, max_epochs=1, num_train=32, num_val=16)


def fake_row(config, value=None):
    """A row computed from the configuration alone, so that reruns can be compared."""
    row = dict(zip(COLUMNS, [None] * len(COLUMNS)))
    row.update(vars(config))
    ppl = value if value is not None else config.num_steps + config.num_hiddens / 100 + config.lr
    row.update(val_perplexity=ppl, train_perplexity=ppl, seconds=1.0, cpu_seconds=1.0, seconds_per_epoch=1.0,
               tokens_per_second=1.0, num_params=1, torch_threads=1, sample='time traveller, "the"')
    return row


class Recorder:
    """A fake ``train`` that records its calls and can stop the sweep at a given call."""

    def __init__(self, path=None, stop_at=None):
        self.calls, self.path, self.stop_at = [], path, stop_at
        self.rows_on_disk = []

    def __call__(self, config):
        if self.path is not None:
            self.rows_on_disk.append(len(read_results(self.path)))
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        self.calls.append(config)
        return fake_row(config)


def test_grid_spans_every_combination_in_order():
    configs = grid((8, 16), (4,), (0.1, 1), **SETTINGS)
    assert [(c.num_steps, c.num_hiddens, c.lr) for c in configs] == [(8, 4, 0.1), (8, 4, 1.0), (16, 4, 0.1), (16, 4, 1.0)]
    assert all(c.batch_size == 8 and c.max_epochs == 1 for c in configs)
    assert len(grid(**sweep.PUBLISHED)) == 5 * 5 * 4


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_steps=0), "num_steps must be a positive int"),
    (dict(num_hiddens="8"), "num_hiddens must be a positive int"),
    (dict(batch_size=True), "batch_size must be a positive int"),
    (dict(lr=-1.0), "lr must be a positive finite number"),
    (dict(lr=math.inf), "lr must be a positive finite number"),
    (dict(lr="1"), "lr must be a positive finite number"),
])
def test_bad_configurations_are_rejected(kwargs, match):
    values = dict(num_steps=8, num_hiddens=8, lr=1.0, **SETTINGS) | kwargs
    with pytest.raises(ValueError, match=match):
        SweepConfig(**values)


@pytest.mark.parametrize("lists", [((), (8,), (1,)), ((8,), 8, (1,)), ((8,), (8,), "1")])
def test_grid_needs_non_empty_lists(lists):
    with pytest.raises(ValueError, match="must be a non-empty list"):
        grid(*lists, **SETTINGS)


def test_rows_are_appended_as_each_configuration_finishes(tmp_path):
    path = tmp_path / "results.csv"
    configs = grid((8, 16), (4, 8), (1,), **SETTINGS)
    train = Recorder(path)
    table = run_sweep(configs, path, train=train, progress=False)
    assert train.rows_on_disk == [0, 1, 2, 3]
    assert list(table.columns) == COLUMNS and len(table) == 4
    assert list(table.val_perplexity) == [fake_row(c)["val_perplexity"] for c in configs]
    assert table["sample"][0] == 'time traveller, "the"'  # commas and quotes survive the CSV


def test_an_interrupted_sweep_resumes_without_retraining(tmp_path):
    path = tmp_path / "results.csv"
    configs = grid((8, 16), (4, 8), (0.5, 1), **SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, path, train=Recorder(stop_at=3), progress=False)
    assert len(read_results(path)) == 3
    train = Recorder()
    table = run_sweep(configs, path, train=train, progress=False)
    assert train.calls == configs[3:]
    assert len(read_results(path)) == len(configs)
    assert list(table.val_perplexity) == [fake_row(c)["val_perplexity"] for c in configs]
    again = Recorder()
    run_sweep(configs[:2], path, train=again, progress=False)
    assert again.calls == []


def test_a_line_cut_off_by_an_interruption_is_dropped(tmp_path):
    path = tmp_path / "results.csv"
    configs = grid((8,), (4, 8), (1,), **SETTINGS)
    run_sweep(configs[:1], path, train=Recorder(), progress=False)
    with open(path, "a") as f:
        f.write("8,8,1.0,8,1,32")  # a row cut off mid-write
    train = Recorder()
    table = run_sweep(configs, path, train=train, progress=False)
    assert train.calls == configs[1:] and len(read_results(path)) == 2 and len(table) == 2


def test_retrain_replaces_only_the_requested_rows(tmp_path):
    path = tmp_path / "results.csv"
    configs = grid((8,), (4, 8, 16), (1,), **SETTINGS)
    run_sweep(configs, path, train=Recorder(), progress=False)
    table = run_sweep(configs[1:2], path, retrain=True, train=lambda c: fake_row(c, value=99.0), progress=False)
    assert list(table.val_perplexity) == [99.0]
    stored = read_results(path)
    assert len(stored) == 3
    assert sorted(stored.val_perplexity) == sorted([fake_row(configs[0])["val_perplexity"],
                                                    fake_row(configs[2])["val_perplexity"], 99.0])
    train = Recorder()
    run_sweep(configs, path, retrain=True, train=train, progress=False)
    assert train.calls == configs and len(read_results(path)) == 3 and not list(tmp_path.glob("*.tmp"))


def test_settings_are_part_of_a_configuration(tmp_path):
    path = tmp_path / "results.csv"
    run_sweep(grid((8,), (4,), (1,), **SETTINGS), path, train=Recorder(), progress=False)
    train = Recorder()
    run_sweep(grid((8,), (4,), (1,), **(SETTINGS | {"max_epochs": 2})), path, train=train, progress=False)
    assert len(train.calls) == 1 and len(read_results(path)) == 2


def test_bad_inputs_raise_clear_errors(tmp_path):
    configs = grid((8,), (4, 8), (1,), **SETTINGS)
    with pytest.raises(TypeError, match="non-empty list of SweepConfig"):
        run_sweep([], tmp_path / "a.csv", train=Recorder())
    with pytest.raises(TypeError, match="non-empty list of SweepConfig"):
        run_sweep([(8, 4, 1.0)], tmp_path / "a.csv", train=Recorder())
    with pytest.raises(ValueError, match="same configuration twice"):
        run_sweep(configs + configs[:1], tmp_path / "a.csv", train=Recorder())
    with pytest.raises(ValueError, match="train returned the keys"):
        run_sweep(configs, tmp_path / "b.csv", train=lambda c: {"val_perplexity": 1.0}, progress=False)
    other = tmp_path / "other.csv"
    with open(other, "w", newline="") as f:
        csv.writer(f).writerows([["epoch", "loss"], [1, 2.0]])
    with pytest.raises(ValueError, match="not a sweep results file"):
        run_sweep(configs, other, train=Recorder())


def test_progress_prints_one_line_per_trained_configuration(tmp_path, capsys):
    configs = grid((8,), (4, 8), (1,), **SETTINGS)
    run_sweep(configs, tmp_path / "r.csv", train=Recorder())
    lines = capsys.readouterr().out.splitlines()
    assert "2 configurations, 0 already" in lines[0] and "2 to train" in lines[0]
    assert lines[1].startswith("[  1/2]") and lines[2].startswith("[  2/2]") and len(lines) == 3


def test_default_results_path_keeps_quick_runs_out_of_the_committed_file(course_root, monkeypatch):
    monkeypatch.setenv("GRU_COURSE_QUICK", "1")
    assert default_results_path() == course_root / "build" / "06_sweep_results.csv"
    monkeypatch.setenv("GRU_COURSE_QUICK", "0")
    assert default_results_path() == course_root / "notebooks" / "06_sweep_results.csv"


def test_train_config_trains_and_measures_one_configuration():
    config = SweepConfig(4, 5, 1.0, **SETTINGS)
    row, again = train_config(config), train_config(config)
    assert set(row) == set(COLUMNS)
    assert row["val_perplexity"] == again["val_perplexity"] and row["sample"] == again["sample"]  # seeded
    vocab, h = 28, 5
    assert row["num_params"] == 3 * (h * vocab + h * h + 2 * h) + h * vocab + vocab  # nn.GRU + output layer
    assert row["sample"].startswith("time traveller") and len(row["sample"]) == len("time traveller") + 50
    assert row["cpu_seconds"] > 0 and row["seconds"] > 0 and row["num_steps"] == 4 and row["lr"] == 1.0


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_command_line_runs_a_grid_and_resumes(tmp_path, capsys, restore_threads, monkeypatch):
    monkeypatch.setattr(sweep, "train_config", Recorder())
    path = tmp_path / "cli.csv"
    args = ["--preset", "quick", "--num-steps", "4", "--num-hiddens", "3", "5", "--lrs", "2", "--results", str(path)]
    assert sweep.main(args) == 0
    stored = read_results(path)
    assert list(zip(stored.num_steps, stored.num_hiddens, stored.lr)) == [(4, 3, 2.0), (4, 5, 2.0)]
    assert set(stored.num_train) == {sweep.QUICK["num_train"]} and torch.get_num_threads() == 1
    sweep.main(args)
    assert "2 already in cli.csv, 0 to train" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--threads", "0"], ["--num-steps", "0"], ["--preset", "huge"]])
def test_command_line_rejects_bad_arguments(tmp_path, args, restore_threads):
    with pytest.raises(SystemExit):
        sweep.main(args + ["--results", str(tmp_path / "x.csv")])
