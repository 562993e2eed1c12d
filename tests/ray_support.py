"""Helpers for the runner's tests: trial functions that Ray workers import by name (this folder is put on
their PYTHONPATH), subprocess drivers, and cleanup of every process a test started."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from utils.runner import session_processes, stop_sessions as kill_sessions  # noqa: F401 (re-exported for the tests)

TESTS = Path(__file__).resolve().parent


def value_trial(config):
    """A result computed from the configuration alone, so that reruns can be compared."""
    if config.get("calls"):
        with open(config["calls"], "a") as f:
            f.write(json.dumps({k: config[k] for k in ("a", "b", "seed")}) + "\n")
    if config.get("sleep"):
        time.sleep(config["sleep"])
    if config["a"] == config.get("fail_at"):
        raise RuntimeError(f"trial a={config['a']} failed on purpose")
    if config["a"] == config.get("diverge_at"):
        return {"value": math.inf}
    return {"value": config["a"] * 10 + len(config["b"]) + config["seed"] + config.get("offset", 0)}


def crashing_trial(config):
    """Kills its own worker process: always when ``config['always']``, else on the first attempt only (a
    marker file remembers the attempt and the Ray node it ran on); reports on which node it ran."""
    import ray
    node = ray.get_runtime_context().get_node_id()
    marker = Path(config["markers"]) / f"{config['a']}-{config['seed']}"
    if config["a"] == config["always"] or not marker.exists():
        with open(marker, "a") as f:
            f.write(node + "\n")
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(config.get("sleep", 0))
    return {"value": config["a"], "node": node}


def environment(**extra) -> dict:
    """The environment for a subprocess driver or Ray node: this folder on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def start_driver(code: str, env: dict, log: Path) -> subprocess.Popen:
    """Run ``code`` in a new Python process in a session of its own (so that every process it starts,
    Ray's included, can be found and stopped)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, start_new_session=True,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def records_in(path: Path) -> int:
    """Trial records in a results file (0 if it does not exist yet)."""
    return max(len(path.read_text().splitlines()) - 1, 0) if path.exists() else 0
