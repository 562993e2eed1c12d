"""The course's one runner for many trials: a grid of configurations x seeds on Ray, into a results file.

A **study** names a plain trial function (``trial(config) -> dict`` of results), the settings every trial
shares (``fixed``), the grid (each name's list of values; every combination is one configuration) and the
seeds. Each trial gets ``{**fixed, **configuration, "seed": s}``. :func:`run_study` runs the trials that the
results file does not hold yet on Ray, one per ``cpus_per_trial`` cores (torch's threads set to match):

- **locally** by default: ``ray.init()`` starts Ray on this machine's cores;
- **on a cluster**, unchanged, when ``RAY_ADDRESS`` names one (``ray start --head`` on one machine,
  ``ray start --address=HEAD:6379`` on the others; see the README).

The results file (JSON Lines) starts with a header line, the study and every run that wrote to it (its
command, machine, cores, torch and Ray versions), then one line per (configuration, seed) trial. The whole
file is rewritten atomically (a temporary file, then ``os.replace``) as each trial ends, so an interrupted
run (Ctrl-C, a killed driver) loses no finished trial and leaves no cut-off line, and a rerun trains only what
is missing. A lock file makes a second run on the same file stop at once instead of duplicating rows. A trial
that raises is recorded with its error (``status: "failed"``), a worker killed mid-trial is retried by Ray
and recorded as failed once its retries run out; a diverged trial records ``inf`` itself. Failed trials are
tried again by the next run. A file made for another study (another trial, grid, seeds or fixed settings)
is refused with the differences named.
"""
import fcntl
import hashlib
import itertools
import json
import math
import os
import platform
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from utils.mode import QUICK_ENV
from utils.paths import OUTPUT_ENV, ROOT_ENV, STORE_ENV, output_dir, writable_dir
from utils.progress import progress_bar

FORMAT = "gru-course study results, version 1"
COURSE_ENV = (QUICK_ENV, ROOT_ENV, OUTPUT_ENV, STORE_ENV)  # passed on to every worker
KEY = "seed"  # with the grid's names, what identifies a trial
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class StudyMismatch(ValueError):
    """A results file holds another study than the one asked for."""


class ResultsFileError(ValueError):
    """A results file cannot be read as one: a line is not a trial of its study."""


class ResultsFileBusy(RuntimeError):
    """Another run is writing the same results file."""


def _canonical(value):
    """A value as it is compared and stored: tuples become lists, ints stay ints, floats stay floats."""
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if hasattr(value, "item"):  # NumPy and torch scalars
        return _canonical(value.item())
    raise TypeError(f"study values must be numbers, strings, booleans or lists of them, got {value!r}")


def trial_name(fn: Callable) -> str:
    """``module.qualname`` of a trial function: what a results file records of it."""
    return f"{fn.__module__}.{fn.__qualname__}"


@dataclass(frozen=True)
class Study:
    """A trial function, the settings all its trials share, a grid of configurations and seeds.

    ``grid`` maps each swept name to its values (each an int, float, string or bool); the configurations
    are every combination, the first name varying slowest. ``seeds`` is a non-empty list of distinct ints.
    """

    name: str
    trial: Callable
    grid: dict
    seeds: tuple = (0,)
    fixed: dict = field(default_factory=dict)

    def __post_init__(self):
        if not callable(self.trial):
            raise TypeError(f"Study {self.name!r}: trial must be a function of a config dict, got {self.trial!r}")
        if not isinstance(self.grid, dict) or not self.grid:
            raise ValueError(f"Study {self.name!r}: grid must be a non-empty dict name -> list of values, "
                             f"got {self.grid!r}")
        grid = {}
        for key, values in self.grid.items():
            values = [values] if isinstance(values, (str, bytes)) else list(values)  # reads a generator once
            if not values:
                raise ValueError(f"Study {self.name!r}: grid[{key!r}] is empty")
            if len({json.dumps(_canonical(v)) for v in values}) != len(values):
                raise ValueError(f"Study {self.name!r}: grid[{key!r}] repeats a value: {values}")
            grid[key] = [_canonical(v) for v in values]
        seeds = list(self.seeds) if not isinstance(self.seeds, int) else [self.seeds]
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) \
                or len(set(seeds)) != len(seeds):
            raise ValueError(f"Study {self.name!r}: seeds must be distinct non-negative ints, got {self.seeds!r}")
        fixed = {str(k): _canonical(v) for k, v in dict(self.fixed).items()}
        clash = (set(fixed) & set(grid)) | ({KEY} & (set(fixed) | set(grid)))
        if clash:
            raise ValueError(f"Study {self.name!r}: {sorted(clash)} appear in more than one of grid, fixed and "
                             "the seed")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "seeds", tuple(seeds))
        object.__setattr__(self, "fixed", fixed)

    def configs(self) -> list[dict]:
        """Every configuration of the grid (without the fixed settings and the seed)."""
        return [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]

    def trials(self) -> list[dict]:
        """Every trial's key: a configuration and a seed, seeds varying fastest."""
        return [{**config, KEY: seed} for config in self.configs() for seed in self.seeds]

    def spec(self) -> dict:
        """What a results file records of the study, and compares with the study asked for."""
        return {"name": self.name, "trial": trial_name(self.trial), "grid": self.grid, "seeds": list(self.seeds),
                "fixed": self.fixed}


def _key(trial: dict, names) -> str:
    return json.dumps([_canonical(trial[name]) for name in names])


def differences(stored: dict, wanted: dict) -> list[str]:
    """The parts of two study specs that differ, one readable line each."""
    lines = []
    for part in ("name", "trial", "seeds"):
        if stored.get(part) != wanted[part]:
            lines.append(f"{part}: the file has {stored.get(part)!r}, asked for {wanted[part]!r}")
    for part in ("grid", "fixed"):
        have, want = stored.get(part, {}), wanted[part]
        for key in sorted(set(have) | set(want)):
            if have.get(key, "<absent>") != want.get(key, "<absent>"):
                lines.append(f"{part} {key}: the file has {have.get(key, '<absent>')!r}, "
                             f"asked for {want.get(key, '<absent>')!r}")
    return lines


def read_results_file(path) -> tuple[dict, list[dict]]:
    """The header (study spec and runs) and the trial records of a results file; a line that is not a
    record (a merge-conflict marker, a cut-off line, another file's content) is an error naming it."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines:
        raise ResultsFileError(f"{path} is empty: not a results file (delete it to start afresh)")
    try:
        header = json.loads(lines[0])
        if header.get("format") != FORMAT:
            raise ValueError
    except (ValueError, AttributeError):
        raise ResultsFileError(f"{path}, line 1: expected the header of a results file ({FORMAT!r}), got "
                               f"{lines[0][:80]!r}") from None
    names = list(header["study"]["grid"]) + [KEY]
    records, seen = [], set()
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
            missing = [n for n in names if n not in record.get("trial", {})]
            if missing or record.get("status") not in ("ok", "failed"):
                raise ValueError
        except (ValueError, AttributeError):
            raise ResultsFileError(
                f"{path}, line {number} is not a trial record of this study: {line[:80]!r}. If it is a merge "
                "conflict, keep one side of it (each line is one trial) and run again.") from None
        key = _key(record["trial"], names)
        if key in seen:
            raise ResultsFileError(f"{path}, line {number}: trial {record['trial']} appears twice")
        seen.add(key)
        records.append(record)
    return header, records


def _write_atomically(path: Path, header: dict, records: list[dict]) -> None:
    """The whole file into a temporary file beside it, flushed, then renamed over it in one step."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as f:
        f.write(json.dumps(header, sort_keys=False) + "\n")
        for record in records:
            f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def machine_facts(cpus_per_trial: int) -> dict:
    """Where and with what a run ran: host, cores, threads per trial, Python, torch and Ray versions."""
    import ray
    import torch
    return {"host": socket.gethostname(), "platform": platform.platform(), "cores": os.cpu_count(),
            "cluster_cpus": int(ray.cluster_resources().get("CPU", 0)),
            "ray_address": os.environ.get("RAY_ADDRESS") or "local", "torch_threads_per_trial": cpus_per_trial,
            "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__}


def command_line() -> str:
    """The command that started this process, as a shell would read it."""
    if "ipykernel" in sys.modules:
        return "a notebook cell"
    argv = sys.argv if sys.argv and sys.argv[0] else ["python"]
    if argv[0].endswith(".py") and "/utils/" in argv[0]:
        argv = ["python", "-m", f"utils.{Path(argv[0]).stem}"] + argv[1:]
    return " ".join(shlex.quote(a) for a in argv)


def _start_ray() -> bool:
    """Connect to ``RAY_ADDRESS`` or start Ray on this machine's cores; True if this call started it."""
    import ray
    if ray.is_initialized():
        return False
    env = {name: os.environ[name] for name in COURSE_ENV if name in os.environ}
    # "local" starts a new instance even if a stale cluster file of an earlier `ray start` lies in /tmp/ray
    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", configure_logging=True, runtime_env={"env_vars": env})
    return True


def _run_trial(trial: Callable, config: dict, cpus: int) -> dict:
    """Inside a Ray worker: run one trial with ``cpus`` torch threads; exceptions become a failed record."""
    import torch
    torch.set_num_threads(cpus)
    start = time.perf_counter()
    try:
        results = trial(dict(config))
        if not isinstance(results, dict):
            raise TypeError(f"the trial returned {type(results).__name__}, expected a dict of results")
        results = {str(k): _canonical(v) for k, v in results.items()}
        status, error = "ok", None
    except Exception as err:  # the trial's failure is recorded, never lost
        results, status, error = {}, "failed", f"{type(err).__name__}: {err}"
    return {"status": status, "error": error, "results": results, "seconds": time.perf_counter() - start,
            "host": socket.gethostname(), "pid": os.getpid()}


class _Lock:
    """An exclusive, non-blocking lock on ``.<results>.lock`` beside the results file."""

    def __init__(self, path: Path):
        self.path = path.with_name(f".{path.name}.lock")
        self.file = None

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise ResultsFileBusy(f"another run is writing {self.path.with_name(self.path.name[1:-5])} (it holds "
                                  f"{self.path}); wait for it to finish, or give this run another results file")
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _check_writable(path: Path) -> None:
    """Before any trial runs: the folder can take the temporary file and the file (if any) can be replaced."""
    writable_dir(path.parent, "the results file")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{path} is read-only: no trial's result could be saved; make it writable "
                              f"(chmod u+w {path}) or give another results file")


def default_path(study: Study) -> Path:
    """``runs/<study name>-<fingerprint>.jsonl`` under the run's output folder (``build/`` unless
    ``GRU_COURSE_OUTPUT``): where a chapter's studies keep their results, never a tracked file. The
    fingerprint of the study's spec gives another grid or other settings (a quick run, say) a file of its own."""
    slug = re.sub(r"[^a-z0-9]+", "_", study.name.lower()).strip("_")
    fingerprint = hashlib.sha1(json.dumps(study.spec(), sort_keys=True).encode()).hexdigest()[:8]
    return output_dir() / "runs" / f"{slug}-{fingerprint}.jsonl"


def run_study(study: Study, path=None, *, retrain: bool = False, cpus_per_trial: int = 1, max_retries: int = 2,
              progress: bool = True, complete: bool = False) -> pd.DataFrame:
    """Run every trial of ``study`` that the results file at ``path`` (default :func:`default_path`) lacks
    (all of them with ``retrain``; each old record is replaced only when its new result arrives), on Ray;
    return :func:`results_table`.

    ``cpus_per_trial`` cores (and torch threads) per trial; ``max_retries`` is how often Ray retries a trial
    whose worker died. ``progress`` shows a bar with done/total, failures and the time left. ``complete=True``
    raises, with the first failure's error, unless every trial finished (a chapter's conclusions need all).
    """
    path = Path(path) if path is not None else default_path(study)
    if isinstance(cpus_per_trial, bool) or not isinstance(cpus_per_trial, int) or cpus_per_trial < 1:
        raise ValueError(f"cpus_per_trial must be a positive int, got {cpus_per_trial!r}")
    _check_writable(path)
    spec, names = study.spec(), list(study.grid) + [KEY]
    with _Lock(path):
        header, records = read_results_file(path) if path.exists() else ({"format": FORMAT, "study": spec,
                                                                           "runs": []}, [])
        problems = differences(header["study"], spec)
        if problems:
            raise StudyMismatch(f"{path} holds another study than the one asked for:\n  " + "\n  ".join(problems)
                                + "\nUse another results file for this study.")
        done = {_key(r["trial"], names) for r in records if r["status"] == "ok" and not retrain}
        todo = [t for t in study.trials() if _key(t, names) not in done]
        if not todo:
            return results_table(path, study, complete=complete)
        import ray
        started = _start_ray()
        try:
            header["runs"].append({"command": command_line(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                   "machine": machine_facts(cpus_per_trial)})
            run_index = len(header["runs"]) - 1
            _write_atomically(path, header, records)
            remote = ray.remote(_run_trial).options(num_cpus=cpus_per_trial, max_retries=max_retries)
            pending = {remote.remote(study.trial, {**study.fixed, **t}, cpus_per_trial): t for t in todo}
            by_key = {_key(r["trial"], names): i for i, r in enumerate(records)}
            failures = 0
            with progress_bar(total=len(todo), desc=f"{study.name}: {len(study.trials()) - len(todo)} of "
                              f"{len(study.trials())} already in {path.name}", disable=not progress) as bar:
                try:
                    while pending:
                        (ready,), _ = ray.wait(list(pending), num_returns=1)
                        trial = pending.pop(ready)
                        try:
                            outcome = ray.get(ready)
                        except ray.exceptions.RayError as err:  # the worker died more often than Ray retries
                            message = ANSI_ESCAPE.sub("", str(err))[:400]
                            outcome = {"status": "failed", "error": f"{type(err).__name__}: {message}",
                                       "results": {}, "seconds": None, "host": None, "pid": None}
                        record = {"trial": trial, **outcome, "run": run_index}
                        key = _key(trial, names)
                        if key in by_key:
                            records[by_key[key]] = record
                        else:
                            by_key[key] = len(records)
                            records.append(record)
                        _write_atomically(path, header, records)
                        failures += record["status"] == "failed"
                        bar.set_postfix(failed=failures, refresh=False)
                        bar.update(1)
                except BaseException:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    raise
        finally:
            if started and not _in_notebook():
                ray.shutdown()
    return results_table(path, study, complete=complete)


def _in_notebook() -> bool:
    """A notebook keeps its Ray instance for its later cells (it ends with the kernel)."""
    return "ipykernel" in sys.modules


def results_table(path, study: Study | None = None, *, complete: bool = False) -> pd.DataFrame:
    """One row per trial record of the results file: the grid's names, ``seed``, ``status``, ``error``,
    every result, ``seconds`` and ``run``; in the study's trial order when ``study`` is given.

    With ``study``, a file made for another study is an error naming the differences; ``complete=True``
    also requires every trial to have finished (``status == "ok"``), naming the missing ones. A notebook
    that reads a stored results file uses both, so it never draws conclusions from another grid.
    """
    path = Path(path)
    header, records = read_results_file(path)
    if study is not None:
        problems = differences(header["study"], study.spec())
        if problems:
            raise StudyMismatch(f"{path} was made for another study than this notebook asks for:\n  "
                                + "\n  ".join(problems))
        names = list(study.grid) + [KEY]
        order = {_key(t, names): i for i, t in enumerate(study.trials())}
        records = sorted(records, key=lambda r: order.get(_key(r["trial"], names), math.inf))
        if complete:
            ok = {_key(r["trial"], names) for r in records if r["status"] == "ok"}
            missing = [t for t in study.trials() if _key(t, names) not in ok]
            failed = [r for r in records if r["status"] == "failed"]
            if missing:
                reason = f"; the first failure: {failed[0]['trial']}: {failed[0]['error']}" if failed else ""
                raise ResultsFileError(f"{path} lacks {len(missing)} of {len(order)} finished trials (first: "
                                       f"{missing[0]}){reason}. Run again to finish them: "
                                       f"{header['runs'][-1]['command'] if header['runs'] else 'none recorded'}")
    rows = [{**r["trial"], "status": r["status"], "error": r["error"], **r["results"], "seconds": r["seconds"],
             "run": r["run"]} for r in records]
    return pd.DataFrame(rows)


def provenance(path) -> str:
    """The commands and machines that produced a results file, one line per run, for a notebook to print."""
    header, records = read_results_file(path)
    counts = pd.Series([r["run"] for r in records]).value_counts().to_dict()
    lines = []
    for index, run in enumerate(header["runs"]):
        m = run["machine"]
        lines.append(f"run {index}: `{run['command']}` started {run['started']}, {counts.get(index, 0)} trials; "
                     f"{m['cores']} cores ({m['cluster_cpus']} Ray CPUs, {m['ray_address']}), "
                     f"{m['torch_threads_per_trial']} torch thread(s) per trial, Python {m['python']}, "
                     f"torch {m['torch']}, Ray {m['ray']}")
    return "\n".join(lines)
