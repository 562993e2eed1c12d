"""The course's one runner for many trials: a grid of configurations x seeds on Ray, into a results file.

A **study** names a plain trial function (``trial(config) -> dict`` of results), the settings every trial
shares (``fixed``), the grid (each name's list of values; every combination is one configuration) and the
seeds. Each trial gets ``{**fixed, **configuration, "seed": s}``. :func:`run_study` runs the trials that the
results file does not hold yet on Ray, one per ``cpus_per_trial`` cores (torch's threads set to match):

- **locally** by default: ``ray.init()`` starts Ray on this machine's cores;
- **on a cluster**, unchanged, when ``RAY_ADDRESS`` names one (``ray start --head`` on one machine,
  ``ray start --address=HEAD:6379`` on the others; see the README). An address where no head answers is an
  error within seconds; a local start that times out on a busy machine is tried again.

The results file (JSON Lines) starts with a header line, the study and every run that wrote to it (its
command, machine, cores, torch and Ray versions), then one line per (configuration, seed) trial. The whole
file is rewritten atomically (a temporary file, then ``os.replace``) as each trial ends, so an interrupted
run (Ctrl-C, a killed driver) loses no finished trial and leaves no cut-off line, and a rerun trains only what
is missing. A lock file makes a second run on the same file stop at once instead of duplicating rows. A trial
that raises is recorded with its error (``status: "failed"``), a worker killed mid-trial is retried by Ray
and recorded as failed once its retries run out; a trial that runs past ``time_limit`` seconds is stopped and
recorded as failed; a diverged trial records ``inf`` itself. Failed trials are tried again by the next run; a
retrain keeps an ``ok`` record until a new ``ok`` result replaces it. A file made for another study (another
trial, grid, seeds or fixed settings) is refused with the differences named; records made by another version
of the trial's code (each run records a fingerprint of it) are trained again.

``python -m utils.runner show FILE`` prints a results file's runs and table; ``python -m utils.runner head --
COMMAND`` runs a command beside one local Ray head (as a cluster's, with token authentication), which every
study in it reaches through ``RAY_ADDRESS``: ``make test`` runs that way.
"""
import argparse
import contextlib
import fcntl
import hashlib
import inspect
import itertools
import json
import math
import numbers
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from utils.cli import ArgumentParser, fail
from utils.mode import QUICK_ENV
from utils.paths import OUTPUT_ENV, ROOT_ENV, STORE_ENV, output_dir, writable_dir
from utils.progress import progress_bar
from utils.shapes import check_counts, check_positive_numbers

FORMAT = "gru-course study results, version 1"
# Passed on to every worker: the course's switches, and the driver's PYTHONPATH (where its trial functions live)
COURSE_ENV = (QUICK_ENV, ROOT_ENV, OUTPUT_ENV, STORE_ENV, "PYTHONPATH")
KEY = "seed"  # with the grid's names, what identifies a trial
RECORD_COLUMNS = ("status", "error", "seconds", "run")  # results_table's own columns besides the trial's
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
IDLE_WORKERS_PER_CPU = 4  # idle Ray workers a local head keeps per CPU, so that concurrent studies reuse theirs
RAY_START_TRIES = 3  # a local start that times out on a busy machine is tried this often
DEFAULT_TIME_LIMIT = 6 * 3600.0  # seconds a trial may run (the longest course trial takes minutes)


class StudyMismatch(ValueError):
    """A results file holds another study than the one asked for."""


class ResultsFileError(ValueError):
    """A results file cannot be read as one: a line is not a trial of its study."""


class ResultsFileBusy(RuntimeError):
    """Another run is writing the same results file."""


class RayUnavailable(RuntimeError):
    """Ray could not be reached at ``RAY_ADDRESS``, or not started on this machine."""


class TrialTimeLimit(Exception):
    """A trial ran past its time limit."""


def _canonical(value):
    """A value as it is compared and stored: tuples become lists, ints stay ints, floats stay floats."""
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if hasattr(value, "tolist"):  # NumPy and torch scalars and arrays
        return _canonical(value.tolist())
    raise TypeError(f"study values must be numbers, strings, booleans or lists of them, got {value!r}")


def trial_name(fn: Callable) -> str:
    """``module.qualname`` of a trial function: what a results file records of it."""
    return f"{fn.__module__}.{fn.__qualname__}"


def code_fingerprint(fn: Callable) -> str | None:
    """A short hash of a trial function's source (of its bytecode where the source cannot be read); None for a
    callable without code (a ``functools.partial``, say)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is None:
            return None
        text = code.co_code.hex() + repr(code.co_consts) + repr(code.co_names)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


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
        if not isinstance(self.fixed, dict):
            raise TypeError(f"Study {self.name!r}: fixed must be a dict name -> value, got {self.fixed!r}")
        names = [k for k in (*self.grid, *self.fixed) if not isinstance(k, str)]
        if names:
            raise TypeError(f"Study {self.name!r}: grid and fixed names must be strings, got {names!r}")
        grid = {}
        for key, values in self.grid.items():
            if isinstance(values, (str, bytes)):
                values = [values]
            elif isinstance(values, (dict, set)) or not hasattr(values, "__iter__"):
                raise TypeError(f"Study {self.name!r}: grid[{key!r}] must be a list of values, got {values!r}")
            values = list(values)  # reads a generator once
            if not values:
                raise ValueError(f"Study {self.name!r}: grid[{key!r}] is empty")
            if len({json.dumps(_canonical(v)) for v in values}) != len(values):
                raise ValueError(f"Study {self.name!r}: grid[{key!r}] repeats a value: {values}")
            grid[key] = [_canonical(v) for v in values]
        seeds = [self.seeds] if isinstance(self.seeds, numbers.Integral) else list(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds) \
                or len(set(seeds)) != len(seeds):
            raise ValueError(f"Study {self.name!r}: seeds must be distinct non-negative ints, got {self.seeds!r}")
        seeds = [int(s) for s in seeds]  # NumPy ints too
        fixed = {k: _canonical(v) for k, v in self.fixed.items()}
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
    try:
        lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if line.strip()]  # blank lines (a trailing newline added by an editor) are no records
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path} is not text: not a results file (delete it to start afresh)") from None
    if not lines:
        raise ResultsFileError(f"{path} is empty: not a results file (delete it to start afresh)")
    try:
        header = json.loads(lines[0][1])
        study = header["study"]
        if header.get("format") != FORMAT or not isinstance(study["grid"], dict) or \
                not isinstance(study["seeds"], list) or not isinstance(header["runs"], list):
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ResultsFileError(f"{path}, line {lines[0][0]}: expected the header of a results file ({FORMAT!r}, "
                               f"with its study and runs), got {lines[0][1][:80]!r}") from None
    names = list(study["grid"]) + [KEY]
    allowed = {**{n: {json.dumps(v) for v in values} for n, values in study["grid"].items()},
               KEY: {json.dumps(s) for s in study["seeds"]}}
    records, seen = [], set()
    for number, line in lines[1:]:
        try:
            record = json.loads(line)
            missing = [n for n in names if n not in record.get("trial", {})]
            if missing or record.get("status") not in ("ok", "failed") or not isinstance(record.get("results"), dict):
                raise ValueError
        except (ValueError, AttributeError):
            raise ResultsFileError(
                f"{path}, line {number} is not a trial record of this study: {line[:80]!r}. If it is a merge "
                "conflict, keep one side of it (each line is one trial) and run again.") from None
        outside = [n for n in names if json.dumps(record["trial"][n]) not in allowed[n]]
        if outside:
            raise ResultsFileError(f"{path}, line {number}: trial {record['trial']} is not in the study's grid and "
                                   f"seeds ({', '.join(outside)} outside it); remove the line")
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


def ray_address() -> str | None:
    """``RAY_ADDRESS`` checked, or None when unset (run on this machine). A ``HOST:PORT`` must answer within
    seconds (Ray itself would retry for minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if not address or address == "local":
        return None
    if address == "auto" or address.startswith("ray://"):
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayUnavailable(f"RAY_ADDRESS={address!r}: expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379, "
                             "where `ray start --head --port=6379` ran), or unset it to run on this machine's cores")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        raise RayUnavailable(f"RAY_ADDRESS={address!r}: no Ray head answers there ({err}). Start one on {host} with "
                             f"`ray start --head --port={port}`, correct the address, or unset RAY_ADDRESS to run "
                             "on this machine's cores") from None
    return address


def _start_ray() -> bool:
    """Connect to ``RAY_ADDRESS`` or start Ray on this machine's cores; True if this call started it. A local
    start that times out (a busy machine) is tried again, then fails saying what to do."""
    import ray
    if ray.is_initialized():
        return False
    address = ray_address()
    env = {name: os.environ[name] for name in COURSE_ENV if name in os.environ}
    for attempt in range(1, RAY_START_TRIES + 1):
        try:
            # "local" starts a new instance even if a stale cluster file of an earlier `ray start` lies in /tmp/ray
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True, runtime_env={"env_vars": env})
            return True
        except ray.exceptions.AuthenticationError as err:
            raise RayUnavailable(f"the Ray cluster at RAY_ADDRESS={address!r} asks for its token ({err}). Set "
                                 "RAY_AUTH_MODE=token and copy the head's ~/.ray/auth_token (printed by `ray "
                                 "get-auth-token` there) to ~/.ray/auth_token here, or point RAY_AUTH_TOKEN_PATH "
                                 "at a copy") from None
        except Exception as err:  # Ray raises a bare Exception when its node does not come up in time
            ray.shutdown()
            if address or "timed out during startup" not in str(err):
                raise
            if attempt == RAY_START_TRIES:
                raise RayUnavailable(
                    f"Ray did not start on this machine in {RAY_START_TRIES} tries ({err}): the machine is too busy. "
                    "Close other heavy programs and run again, or start Ray once yourself (`ray start --head "
                    "--port=6379`) and set RAY_ADDRESS=127.0.0.1:6379 for every run") from None


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise :class:`TrialTimeLimit` in the block after ``seconds`` (a timer signal; the main thread only, which
    is where a Ray worker runs its task). A trial blocked inside one C call is stopped when the call returns."""
    if seconds is None or sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise TrialTimeLimit(f"the trial ran past its time limit of {seconds:g} s (run_study's time_limit)")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_trial(trial: Callable, config: dict, cpus: int, reserved: tuple, time_limit: float | None) -> dict:
    """Inside a Ray worker: run one trial with ``cpus`` torch threads; exceptions (a time limit passed, results
    that would overwrite the ``reserved`` columns) become a failed record."""
    import torch
    torch.set_num_threads(cpus)
    start = time.perf_counter()
    try:
        with _time_limit(time_limit):
            results = trial(dict(config))
        if not isinstance(results, dict):
            raise TypeError(f"the trial returned {type(results).__name__}, expected a dict of results")
        unnamed = [k for k in results if not isinstance(k, str)]
        if unnamed:
            raise TypeError(f"the trial returned results named {unnamed!r}: result names must be strings")
        clash = sorted(set(results) & set(reserved))
        if clash:
            raise ValueError(f"the trial returned results named {clash}, which are the table's own columns "
                             f"{list(reserved)}: rename them")
        results = {k: _canonical(v) for k, v in results.items()}
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


def _todo(header: dict, records: list[dict], study: Study, retrain: bool, fingerprint: str | None):
    """The trials to run, and the ``ok`` records that another version of the trial's code made (run again)."""
    names = list(study.grid) + [KEY]
    other_code = {i for i, run in enumerate(header["runs"]) if run.get("trial_code") not in (None, fingerprint)}
    ok = [r for r in records if r["status"] == "ok"]
    stale = [r for r in ok if r.get("run") in other_code]
    done = set() if retrain else {_key(r["trial"], names) for r in ok if r.get("run") not in other_code}
    return [t for t in study.trials() if _key(t, names) not in done], stale


def run_study(study: Study, path=None, *, retrain: bool = False, cpus_per_trial: int = 1, max_retries: int = 2,
              progress: bool = True, complete: bool = False,
              time_limit: float | None = DEFAULT_TIME_LIMIT) -> pd.DataFrame:
    """Run every trial of ``study`` that the results file at ``path`` (default :func:`default_path`) lacks
    (all of them with ``retrain``; an old ``ok`` record is replaced only by a new ``ok`` result), on Ray;
    return :func:`results_table`.

    ``cpus_per_trial`` cores (and torch threads) per trial, at most the cluster's; ``max_retries`` is how often
    Ray retries a trial whose worker died; a trial still running after ``time_limit`` seconds (None: no limit)
    is stopped and recorded as failed. ``progress`` shows a bar with done/total, failures and the time left; the
    first failure's error is printed at the end. ``complete=True`` raises, with the first failure's error,
    unless every trial finished (a chapter's conclusions need all).
    """
    if not isinstance(study, Study):
        raise TypeError(f"run_study expects a Study, got {type(study).__name__}")
    path = Path(path) if path is not None else default_path(study)
    if isinstance(cpus_per_trial, bool) or not isinstance(cpus_per_trial, numbers.Integral) or cpus_per_trial < 1:
        raise ValueError(f"cpus_per_trial must be a positive int, got {cpus_per_trial!r}")
    check_counts("run_study", max_retries=max_retries)
    if time_limit is not None:
        check_positive_numbers("run_study", time_limit=time_limit)
    spec, names = study.spec(), list(study.grid) + [KEY]
    fingerprint = code_fingerprint(study.trial)
    if path.exists():  # a finished file is read, never written: it may be read-only
        header, records = read_results_file(path)
        _refuse_other_study(path, header, spec)
        if not _todo(header, records, study, retrain, fingerprint)[0]:
            return results_table(path, study, complete=complete)
    _check_writable(path)
    with _Lock(path):
        header, records = read_results_file(path) if path.exists() else ({"format": FORMAT, "study": spec,
                                                                           "runs": []}, [])
        _refuse_other_study(path, header, spec)
        todo, stale = _todo(header, records, study, retrain, fingerprint)
        if not todo:
            return results_table(path, study, complete=complete)
        if stale and not retrain:
            print(f"{len(stale)} records in {path.name} were made by another version of {trial_name(study.trial)}'s "
                  "code: training them again", flush=True)
        import ray
        started = _start_ray()
        ends_ray = started and not _in_notebook()
        try:
            cluster_cpus = ray.cluster_resources().get("CPU", 0)
            if cpus_per_trial > cluster_cpus:
                raise ValueError(f"cpus_per_trial={cpus_per_trial}, but the Ray cluster has {cluster_cpus:g} CPUs "
                                 "(ray.cluster_resources()): no trial could ever start. Ask for at most "
                                 f"{cluster_cpus:g}, or add machines to the cluster")
            header["runs"].append({"command": command_line(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                   "machine": machine_facts(cpus_per_trial), "trial_code": fingerprint})
            run_index = len(header["runs"]) - 1
            _write_atomically(path, header, records)
            remote = ray.remote(_run_trial).options(num_cpus=cpus_per_trial, max_retries=max_retries)
            reserved = (*names, *RECORD_COLUMNS)
            pending = {remote.remote(study.trial, {**study.fixed, **t}, cpus_per_trial, reserved, time_limit): t
                       for t in todo}
            by_key = {_key(r["trial"], names): i for i, r in enumerate(records)}
            failures, kept = [], 0
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
                        if record["status"] == "failed":
                            failures.append(record)
                        if key not in by_key:
                            by_key[key] = len(records)
                            records.append(record)
                        elif record["status"] == "ok" or records[by_key[key]]["status"] != "ok":
                            records[by_key[key]] = record
                        else:
                            kept += 1  # a retrain that failed keeps the earlier ok result
                        _write_atomically(path, header, records)
                        bar.set_postfix(failed=len(failures), refresh=False)
                        bar.update(1)
                except BaseException:
                    if not ends_ray:  # else ray.shutdown() below ends the job and its trials with it
                        for ref in pending:
                            ray.cancel(ref, force=True)
                    raise
            if failures:
                print(f"{study.name}: {len(failures)} of {len(todo)} trials failed"
                      + (f" ({kept} kept their earlier ok result)" if kept else "")
                      + f"; the first: {failures[0]['trial']}: {failures[0]['error']}", flush=True)
        finally:
            if ends_ray:
                ray.shutdown()
    return results_table(path, study, complete=complete)


def _refuse_other_study(path: Path, header: dict, spec: dict) -> None:
    problems = differences(header["study"], spec)
    if problems:
        raise StudyMismatch(f"{path} holds another study than the one asked for:\n  " + "\n  ".join(problems)
                            + "\nUse another results file for this study.")


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


def session_processes(sid: int) -> list[int]:
    """Every live process in session ``sid`` (Linux: read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def stop_sessions(sids, timeout: float = 20.0) -> None:
    """SIGKILL every process of the sessions ``sids`` and wait until none is left (zombies aside)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for sid in sids for pid in session_processes(sid)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {left} of sessions {list(sids)} survived SIGKILL")
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_head(num_cpus: int | None = None):
    """One Ray head on this machine for the block, started as a cluster's head is (``ray start --head``, token
    authentication with a new token in a temporary folder): yields the variables that reach it
    (``RAY_ADDRESS``, ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``); every process of it is stopped at the end.
    Concurrent studies keep their idle workers (``IDLE_WORKERS_PER_CPU``) instead of restarting them per trial."""
    num_cpus = os.cpu_count() if num_cpus is None else num_cpus
    check_counts("local_head", num_cpus=num_cpus)
    with tempfile.TemporaryDirectory(prefix="gru-course-ray-") as folder:
        token = Path(folder) / "auth_token"
        token.write_text(uuid.uuid4().hex)
        token.chmod(0o600)
        port = _free_port()
        reach = {"RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        env = {k: v for k, v in {**os.environ, **reach}.items() if k != "RAY_ADDRESS"}
        # Ray keeps about one idle worker per CPU and kills the rest; with several studies (jobs) at once, each
        # trial of one job would then start a new worker (importing torch) in place of another job's idle one.
        env.setdefault("RAY_num_workers_soft_limit", str(IDLE_WORKERS_PER_CPU * num_cpus))
        log = Path(folder) / "head.log"
        sessions = []
        try:
            for attempt in range(1, RAY_START_TRIES + 1):
                with open(log, "w") as out:
                    head = subprocess.Popen(
                        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
                         "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--include-dashboard=false",
                         "--object-store-memory=500000000", "--disable-usage-stats"],
                        env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
                sessions.append(head.pid)
                if head.wait() == 0:
                    break
                stop_sessions([head.pid])
                if attempt == RAY_START_TRIES:
                    raise RayUnavailable(f"`ray start --head` failed {RAY_START_TRIES} times; its last log:\n"
                                         + log.read_text()[-2000:])
            yield reach
        finally:
            stop_sessions(sessions)


def main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m utils.runner",
        description="The course's runner of many trials on Ray (see `utils.runner`'s docstring and the README).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{show,head}")
    show = commands.add_parser("show", help="print a results file's runs and its table of trials")
    show.add_argument("results", type=Path, help="a results file (JSON Lines) written by run_study")
    head = commands.add_parser(
        "head", help="run COMMAND beside one local Ray head, which every study in it reaches through RAY_ADDRESS",
        description="Start one Ray head on this machine (as a cluster's, with token authentication), run COMMAND "
                    "with RAY_ADDRESS pointing at it, stop the head, and exit with COMMAND's status. Where "
                    "RAY_ADDRESS is already set, COMMAND runs against that cluster instead.")
    head.add_argument("--num-cpus", type=int, default=None, help="CPUs the head offers (default: every core)")
    head.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    args = parser.parse_args(argv)
    if args.command == "show":
        if not args.results.is_file():
            parser.error(f"{args.results} is not a file")
        try:
            print(provenance(args.results))
            print(results_table(args.results).to_string(index=False))
        except ResultsFileError as err:
            parser.error(str(err))
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("head needs a command to run, e.g. `python -m utils.runner head -- python -m pytest`")
    if args.num_cpus is not None and args.num_cpus < 1:
        parser.error(f"--num-cpus must be at least 1, got {args.num_cpus}")
    if os.environ.get("RAY_ADDRESS"):
        try:
            ray_address()  # an address that does not answer is an error now, not in every study
        except RayUnavailable as err:
            fail(str(err))
        return subprocess.run(cmd).returncode
    with local_head(args.num_cpus) as reach:
        print(f"utils.runner head: a Ray head with {args.num_cpus or os.cpu_count()} CPUs at "
              f"{reach['RAY_ADDRESS']} for `{shlex.join(cmd)}`", flush=True)
        return subprocess.run(cmd, env={**os.environ, **reach}).returncode


if __name__ == "__main__":
    sys.exit(main())
