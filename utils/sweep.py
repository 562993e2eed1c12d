"""d2l's GRU exercise 2 as studies of the runner: a GRU language model on the Time Machine for every
``num_steps`` x ``num_hiddens`` x ``lr``, trained and scored under one protocol.

:func:`train_config` is the trial: it trains d2l's concise GRU language model (``d2l.GRU`` in ``d2l.RNNLM``,
one layer, minibatch SGD with the gradient norm clipped at 1, d2l's trainer) on the first ``num_train``
windows, then scores it on the **held-out text**: the same 5,000 characters for every configuration, after
the last character any training window reaches, each predicted from all the held-out characters before it
(:func:`utils.language_model.stream_perplexity`). So a ``num_steps=8`` and a ``num_steps=128`` model answer
the same question.

The presets (``python -m utils.sweep --preset NAME``; each writes its own results file):

- ``published``: the published grid (100 configurations) at the published settings, 100 epochs of
  minibatches of 1024;
- ``course``: the same 100 configurations, 3 seeds each, on a budget that fits 90 minutes on 2 cores
  together with the next preset (chapter 06);
- ``published-check``: four configurations at the published settings, 3 seeds each, to see whether the
  short budget's ranking holds there;
- ``quick`` and ``quick-check``: tiny versions of the two for tests (``quick`` is the default when
  ``GRU_COURSE_QUICK=1``).

``python -m utils.sweep --help`` lists the options; the runner (:mod:`utils.runner`) resumes an interrupted
sweep, uses every core, and a Ray cluster when ``RAY_ADDRESS`` is set.
"""
import functools
import math
import sys
import time
from pathlib import Path

import d2l.torch as d2l

from utils.cli import ArgumentParser, fail
from utils.data import TimeMachine
from utils.language_model import stream_perplexity, train_language_model
from utils.mode import QUICK_ENV, quick_mode
from utils.paths import build_dir, repo_root
from utils.runner import RayUnavailable, ResultsFileBusy, Study, run_study
from utils.shapes import check_sizes

SAMPLE_PREFIX = "time traveller"
HELD_OUT = (10_128, 15_128)  # characters [start, stop): after 10,000 windows of up to 128 characters

PUBLISHED_GRID = {"num_steps": (8, 16, 32, 64, 128), "num_hiddens": (8, 16, 32, 64, 128), "lr": (0.01, 0.1, 1, 10)}
COURSE_BUDGET = {"batch_size": 64, "max_epochs": 4}
PRESETS = {
    "published": dict(grid=PUBLISHED_GRID, fixed={"batch_size": 1024, "max_epochs": 100}, seeds=(0,)),
    "course": dict(grid=PUBLISHED_GRID, fixed=COURSE_BUDGET, seeds=(0, 1, 2)),
    "published-check": dict(grid={"num_steps": (32,), "num_hiddens": (32, 128), "lr": (1, 10)},
                            fixed={"batch_size": 1024, "max_epochs": 100}, seeds=(0, 1, 2)),
    "quick": dict(grid={"num_steps": (4, 8), "num_hiddens": (4,), "lr": (1,)},
                  fixed={"batch_size": 16, "max_epochs": 1, "num_train": 160}, seeds=(0, 1)),
    "quick-check": dict(grid={"num_steps": (4,), "num_hiddens": (4,), "lr": (1,)},
                        fixed={"batch_size": 32, "max_epochs": 2, "num_train": 160}, seeds=(0, 1)),
}
DEFAULTS = {"num_train": 10_000, "held_out_start": HELD_OUT[0], "held_out_stop": HELD_OUT[1]}


@functools.lru_cache(maxsize=4)
def _time_machine(batch_size, num_steps, num_train) -> TimeMachine:
    """Configurations that differ only in ``num_hiddens`` or ``lr`` share one (read-only) dataset."""
    return TimeMachine(batch_size, num_steps, num_train=num_train, num_val=0)


def train_config(config: dict) -> dict:
    """Train one configuration and score it; the runner's trial function.

    ``config`` holds ``num_steps``, ``num_hiddens``, ``lr``, ``batch_size``, ``max_epochs``, ``num_train``,
    ``held_out_start``, ``held_out_stop`` and ``seed``. Returns the held-out perplexity, the perplexity on
    as many characters from the start of the training text (same rule: the gap between the two is what the
    model memorised), the wall and CPU seconds of training, training tokens per second, the parameter count
    and a greedy sample.
    """
    start, stop = config["held_out_start"], config["held_out_stop"]
    if start < config["num_train"] + config["num_steps"]:
        raise ValueError(f"the held-out text starts at character {start}, inside the training windows (which "
                         f"reach character {config['num_train'] + config['num_steps'] - 1})")
    data = _time_machine(config["batch_size"], config["num_steps"], config["num_train"])
    cpu_start = time.process_time()
    run = train_language_model(
        "GRU", lambda vocab_size: d2l.GRU(vocab_size, config["num_hiddens"], num_layers=1), data,
        lr=config["lr"], max_epochs=config["max_epochs"], seed=config["seed"], prefixes=(SAMPLE_PREFIX,),
        display=False, validate=False)
    return {"held_out_perplexity": stream_perplexity(run.model, data.tokens(start, stop)),
            "train_text_perplexity": stream_perplexity(run.model, data.tokens(0, stop - start)),
            "train_seconds": run.result.seconds, "cpu_seconds": time.process_time() - cpu_start,
            "tokens_per_second": run.result.tokens_per_second, "num_params": run.num_params,
            "sample": run.samples[SAMPLE_PREFIX]}


def study(preset: str, **overrides) -> Study:
    """The :class:`utils.runner.Study` of a preset; ``overrides`` replace grid values (``num_steps``,
    ``num_hiddens``, ``lr``), fixed settings (``batch_size``, ``max_epochs``, ``num_train``) or ``seeds``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    grid, fixed, seeds = dict(spec["grid"]), {**DEFAULTS, **spec["fixed"]}, spec["seeds"]
    for name, value in overrides.items():
        if value is None:
            continue
        if name in grid:
            grid[name] = list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
        elif name in fixed:
            fixed[name] = value
        elif name == "seeds":
            seeds = value
        else:
            raise ValueError(f"unknown setting {name!r}; expected one of {sorted(grid) + sorted(fixed) + ['seeds']}")
    for name in ("num_steps", "num_hiddens", "batch_size", "max_epochs", "num_train"):
        for value in (grid[name] if name in grid else [fixed[name]]):
            check_sizes("the sweep", **{name: value})
    for value in grid["lr"]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"the sweep expects each lr to be a positive finite number, got {value!r}")
    from utils.sweep import train_config as trial  # by its module's name, also under `python -m utils.sweep`
    return Study(f"06 {preset}", trial, grid=grid, seeds=seeds, fixed=fixed)


def results_path(preset: str) -> Path:
    """``notebooks/06_<preset>.jsonl`` (committed) in full mode, ``build/`` in quick mode."""
    folder = build_dir() if quick_mode() else repo_root() / "notebooks"
    return folder / f"06_{preset.replace('-', '_')}.jsonl"


def main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m utils.sweep",
        description="Train a GRU language model on the Time Machine for every configuration of a grid and seed, "
                    "on Ray (local cores, or the cluster named by RAY_ADDRESS); one record per trial in a results "
                    "file, written as each trial ends; a rerun trains only what is missing.")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help=f"grid, settings and seeds (default: published, or quick when {QUICK_ENV}=1)")
    parser.add_argument("--num-steps", type=int, nargs="+", help="replace the preset's num_steps values")
    parser.add_argument("--num-hiddens", type=int, nargs="+", help="replace the preset's num_hiddens values")
    parser.add_argument("--lr", type=float, nargs="+", help="replace the preset's learning rates")
    parser.add_argument("--batch-size", type=int, help="replace the preset's batch size")
    parser.add_argument("--max-epochs", type=int, help="replace the preset's number of epochs")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the preset's seeds")
    parser.add_argument("--results", type=Path,
                        help="results file (default: notebooks/06_<preset>.jsonl, in build/ in quick mode)")
    parser.add_argument("--retrain", action="store_true", help="train again trials already in the file")
    parser.add_argument("--cpus-per-trial", type=int, default=1, help="cores and torch threads per trial (default 1)")
    args = parser.parse_args(argv)
    if args.cpus_per_trial < 1:
        parser.error(f"--cpus-per-trial must be at least 1, got {args.cpus_per_trial}")
    preset = args.preset or ("quick" if quick_mode() else "published")
    try:
        chosen = study(preset, num_steps=args.num_steps, num_hiddens=args.num_hiddens, lr=args.lr,
                       batch_size=args.batch_size, max_epochs=args.max_epochs, seeds=args.seeds)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    path = args.results or results_path(preset)
    print(f"{chosen.name}: {len(chosen.configs())} configurations x {len(chosen.seeds)} seed(s) -> {path}",
          flush=True)
    try:
        table = run_study(chosen, path, retrain=args.retrain, cpus_per_trial=args.cpus_per_trial)
    except (ValueError, PermissionError, NotADirectoryError, ResultsFileBusy, RayUnavailable) as err:
        fail(str(err))
    failed = int((table.status != "ok").sum())
    print(f"{len(table)} trials in {path}, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
