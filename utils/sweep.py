"""Hyperparameter sweeps of a GRU language model on the Time Machine, written to a CSV file as they run.

Each configuration (``num_steps``, ``num_hiddens``, ``lr`` and the training settings) trains a concise
``d2l.GRU`` through :func:`utils.language_model.train_language_model` and becomes one CSV row, appended
as soon as it finishes. Running the same sweep again skips the configurations already in the file, so an
interrupted sweep resumes where it stopped and a notebook reads the file instead of retraining.

Command line (``python -m utils.sweep --help``)::

    python -m utils.sweep                    # the whole published grid, published settings
    python -m utils.sweep --preset course    # the subset stored in notebooks/06_hyperparameters.ipynb
"""
import argparse
import csv
import dataclasses
import functools
import itertools
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import d2l.torch as d2l
import pandas as pd
import torch

from utils.data import TimeMachine
from utils.language_model import train_language_model
from utils.mode import quick_mode
from utils.paths import build_dir, repo_root

SAMPLE_PREFIX = "time traveller"
RESULTS_NAME = "06_sweep_results.csv"


@dataclass(frozen=True)
class SweepConfig:
    """One training run: the three swept hyperparameters and the settings held fixed."""

    num_steps: int
    num_hiddens: int
    lr: float
    batch_size: int
    max_epochs: int
    num_train: int = 10000
    num_val: int = 5000
    seed: int = 0

    def __post_init__(self):
        for name in ("num_steps", "num_hiddens", "batch_size", "max_epochs", "num_train", "num_val"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SweepConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not 0 < self.lr < math.inf:
            raise ValueError(f"SweepConfig.lr must be a positive finite number, got {self.lr!r}")
        object.__setattr__(self, "lr", float(self.lr))

    @property
    def key(self) -> tuple:
        """What identifies the configuration in a results file."""
        return dataclasses.astuple(self)

    def label(self) -> str:
        return f"num_steps={self.num_steps:<3} num_hiddens={self.num_hiddens:<3} lr={self.lr:g}"


CONFIG_FIELDS = [f.name for f in dataclasses.fields(SweepConfig)]
RESULT_FIELDS = ["val_perplexity", "train_perplexity", "seconds", "cpu_seconds", "seconds_per_epoch",
                 "tokens_per_second", "num_params", "torch_threads", "sample"]
COLUMNS = CONFIG_FIELDS + RESULT_FIELDS


def grid(num_steps, num_hiddens, lrs, **settings) -> list[SweepConfig]:
    """Every combination of the three value lists (``num_steps`` varies slowest, ``lr`` fastest), with
    ``settings`` (``batch_size``, ``max_epochs``, ...) shared by all."""
    for name, values in (("num_steps", num_steps), ("num_hiddens", num_hiddens), ("lrs", lrs)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or len(list(values)) == 0:
            raise ValueError(f"grid: {name} must be a non-empty list of values, got {values!r}")
    return [SweepConfig(s, h, lr, **settings) for s, h, lr in itertools.product(num_steps, num_hiddens, lrs)]


# The grid of the published exercise solution, and its training settings (d2l's GRU section).
PUBLISHED = dict(num_steps=(8, 16, 32, 64, 128), num_hiddens=(8, 16, 32, 64, 128), lrs=(0.01, 0.1, 1, 10),
                 batch_size=1024, max_epochs=100)
# The subset stored in the course (it fits in 15 minutes on a shared 2-core machine).
COURSE = dict(num_steps=(8, 32, 128), num_hiddens=(8, 32, 64), lrs=(0.1, 1, 10), batch_size=64, max_epochs=1)
# Quick mode (tests, CI): a few seconds.
QUICK = dict(num_steps=(8, 16), num_hiddens=(8, 16), lrs=(1, 10), batch_size=64, max_epochs=1,
             num_train=640, num_val=320)
PRESETS = {"published": PUBLISHED, "course": COURSE, "quick": QUICK}


def default_results_path() -> Path:
    """``notebooks/06_sweep_results.csv`` (the committed file) in full mode, ``build/`` in quick mode."""
    return build_dir() / RESULTS_NAME if quick_mode() else repo_root() / "notebooks" / RESULTS_NAME


@functools.lru_cache(maxsize=4)
def _time_machine(batch_size, num_steps, num_train, num_val) -> TimeMachine:
    """Configurations that differ only in ``num_hiddens`` or ``lr`` share one (read-only) dataset."""
    return TimeMachine(batch_size, num_steps, num_train=num_train, num_val=num_val)


def train_config(config: SweepConfig) -> dict:
    """Train one configuration and return its row (a dict with the keys :data:`COLUMNS`).

    ``seconds`` is wall time of training; ``cpu_seconds`` the process CPU time of the whole call
    (training, validation, sampling), which a busy shared machine inflates far less than wall time.
    """
    data = _time_machine(config.batch_size, config.num_steps, config.num_train, config.num_val)
    cpu_start = time.process_time()
    run = train_language_model(f"GRU {config.label()}",
                               lambda vocab_size: d2l.GRU(vocab_size, config.num_hiddens, num_layers=1), data,
                               lr=config.lr, max_epochs=config.max_epochs, seed=config.seed,
                               prefixes=(SAMPLE_PREFIX,), display=False)
    cpu_seconds = time.process_time() - cpu_start
    return {**dataclasses.asdict(config), "val_perplexity": run.val_perplexity,
            "train_perplexity": run.train_perplexity, "seconds": run.result.seconds, "cpu_seconds": cpu_seconds,
            "seconds_per_epoch": run.result.seconds_per_epoch, "tokens_per_second": run.result.tokens_per_second,
            "num_params": run.num_params, "torch_threads": torch.get_num_threads(),
            "sample": run.samples[SAMPLE_PREFIX]}


def read_results(path) -> pd.DataFrame:
    """The rows of a results file (an empty table with :data:`COLUMNS` if it does not exist)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if list(table.columns) != COLUMNS:
        raise ValueError(f"{path} is not a sweep results file of this version: expected the columns "
                         f"{COLUMNS}, found {list(table.columns)}")
    return table


def _repair_interrupted_write(path: Path) -> None:
    """Drop a last line cut off by an interruption (a file not ending in a newline)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    text = path.read_bytes()
    if not text.endswith(b"\n"):
        path.write_bytes(text[:text.rfind(b"\n") + 1])


def _append_row(path: Path, row: dict) -> None:
    """Append one row (and the header to a new file), flushed to disk before returning."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


def run_sweep(configs, path=None, *, retrain: bool = False, progress: bool = True, train=None) -> pd.DataFrame:
    """Train every configuration in ``configs`` that the results file at ``path`` does not hold yet,
    appending one row per configuration as it finishes; return the rows of ``configs`` (in their order).

    ``path`` defaults to :func:`default_results_path`. ``retrain=True`` trains ``configs`` again and
    replaces their rows (rows of other configurations stay). ``progress`` prints one line per trained
    configuration with the count, elapsed time and an estimate of the time left. ``train`` maps a
    :class:`SweepConfig` to its row (default :func:`train_config`; replaceable for tests).
    """
    train = train_config if train is None else train
    configs = list(configs)
    if not configs or not all(isinstance(c, SweepConfig) for c in configs):
        raise TypeError("run_sweep expects a non-empty list of SweepConfig (see utils.sweep.grid)")
    if len({c.key for c in configs}) != len(configs):
        raise ValueError("run_sweep got the same configuration twice")
    path = Path(path) if path is not None else default_results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_interrupted_write(path)
    table = read_results(path)
    keys = [tuple(row) for row in table[CONFIG_FIELDS].itertuples(index=False)]
    wanted = {c.key for c in configs}
    if retrain:
        keep = [key not in wanted for key in keys]
        rewritten = path.with_name(path.name + ".tmp")
        rewritten.unlink(missing_ok=True)
        for row in table[keep].to_dict("records"):
            _append_row(rewritten, row)
        rewritten.touch()
        os.replace(rewritten, path)  # atomic: an interruption leaves the old file or the new one
        keys = [key for key, kept in zip(keys, keep) if kept]
    done = set(keys) & wanted
    todo = [c for c in configs if c.key not in done]
    if progress:
        print(f"sweep: {len(configs)} configurations, {len(done)} already in {path.name}, {len(todo)} to train",
              flush=True)
    start = time.perf_counter()
    for i, config in enumerate(todo, 1):
        row = train(config)
        if set(row) != set(COLUMNS):
            raise ValueError(f"train returned the keys {sorted(row)}, expected {sorted(COLUMNS)}")
        _append_row(path, row)
        if progress:
            elapsed = time.perf_counter() - start
            left = elapsed / i * (len(todo) - i)
            print(f"[{i:>3}/{len(todo)}] {config.label()}  val ppl {row['val_perplexity']:8.2f}  "
                  f"{row['seconds']:6.1f} s  elapsed {_duration(elapsed)}  left ~{_duration(left)}", flush=True)
    table = read_results(path)
    index = {tuple(row): i for i, row in enumerate(table[CONFIG_FIELDS].itertuples(index=False))}
    return table.iloc[[index[c.key] for c in configs]].reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Train a GRU language model on the Time Machine for every configuration of a grid; "
                    "one CSV row per configuration, appended as it finishes; finished rows are skipped.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="published",
                        help="grid and training settings to start from (default: published, the whole grid "
                             "with batch_size=1024 and max_epochs=100)")
    parser.add_argument("--num-steps", type=int, nargs="+", help="override the preset's num_steps values")
    parser.add_argument("--num-hiddens", type=int, nargs="+", help="override the preset's num_hiddens values")
    parser.add_argument("--lrs", type=float, nargs="+", help="override the preset's learning rates")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--max-epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--results", type=Path, help=f"results file (default: {default_results_path()})")
    parser.add_argument("--retrain", action="store_true", help="train again configurations already in the file")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args(argv)
    settings = dict(PRESETS[args.preset])
    for name, value in (("num_steps", args.num_steps), ("num_hiddens", args.num_hiddens), ("lrs", args.lrs),
                        ("batch_size", args.batch_size), ("max_epochs", args.max_epochs)):
        if value is not None:
            settings[name] = value
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    try:
        configs = grid(**settings)
    except ValueError as err:
        parser.error(str(err))
    run_sweep(configs, args.results, retrain=args.retrain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
