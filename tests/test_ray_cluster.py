"""The runner on a real Ray cluster of two nodes on localhost, reached through RAY_ADDRESS exactly as a
cluster of several machines would be, with token authentication and a token of its own (nothing read from or
written to ``~/.ray``): every trial recorded once, a worker killed mid-trial retried, one that dies at every
attempt recorded as failed. Every Ray process the test starts, it stops."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from utils.runner import local_head, read_results_file

from ray_support import environment, kill_sessions, session_processes, start_driver

DRIVER = """
    from ray_support import crashing_trial
    from utils.runner import Study, run_study
    study = Study("cluster", crashing_trial, grid={{"a": [1, 2, 3, 4, 5, 6]}}, seeds=(0,),
                  fixed={{"markers": {markers!r}, "always": 6, "sleep": 1.0}})
    table = run_study(study, {path!r}, max_retries=2, progress=False)
    print("statuses", list(table.status))
"""


def join(reach: dict, env: dict, log: Path) -> int:
    """``ray start --address=HEAD`` (a second machine joining) in a session of its own; its session id."""
    process = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start",
                                f"--address={reach['RAY_ADDRESS']}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                "--object-store-memory=150000000", "--disable-usage-stats"],
                               env=env, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    code = process.wait(180)
    assert code == 0, log.read_text()
    return process.pid


def test_a_study_runs_on_a_two_node_cluster_and_survives_killed_workers(tmp_path, monkeypatch):
    import ray
    if ray.is_initialized():
        ray.shutdown()  # this process holds no Ray of its own during the test
    home = tmp_path / "home"  # a user who never ran Ray: the token must come from the head, not from ~/.ray
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", environment()["PYTHONPATH"])  # the head's workers import ray_support
    sessions = []
    with local_head(num_cpus=1) as reach:
        assert Path(reach["RAY_AUTH_TOKEN_PATH"]).is_file() and reach["RAY_AUTH_MODE"] == "token"
        env = environment(**{k: v for k, v in reach.items() if k != "RAY_ADDRESS"})
        try:
            sessions.append(join(reach, env, tmp_path / "node.log"))
            assert all(session_processes(sid) for sid in sessions), "ray start left no daemon running"
            (tmp_path / "markers").mkdir()
            path = tmp_path / "cluster.jsonl"
            driver = start_driver(DRIVER.format(markers=str(tmp_path / "markers"), path=str(path)),
                                  {**env, "RAY_ADDRESS": reach["RAY_ADDRESS"]}, tmp_path / "driver.log")
            sessions.append(driver.pid)
            driver.wait(300)
            log = (tmp_path / "driver.log").read_text()
            assert driver.returncode == 0, log
        finally:
            kill_sessions(sessions)
    assert not os.listdir(home), "the cluster wrote into the user's home"
    header, records = read_results_file(path)
    machine = header["runs"][0]["machine"]
    assert machine["cluster_cpus"] == 2 and machine["ray_address"] == reach["RAY_ADDRESS"]
    by_a = {r["trial"]["a"]: r for r in records}
    assert sorted(by_a) == [1, 2, 3, 4, 5, 6] and len(records) == 6  # nothing lost, nothing duplicated
    assert all(by_a[a]["status"] == "ok" and by_a[a]["results"]["value"] == a for a in range(1, 6))
    assert by_a[6]["status"] == "failed" and "Worker" in by_a[6]["error"], by_a[6]["error"]
    attempts = {line for marker in (tmp_path / "markers").iterdir() for line in marker.read_text().split()}
    assert len(attempts | {by_a[a]["results"]["node"] for a in range(1, 6)}) == 2, "the trials ran on one node only"
    assert not [pid for sid in sessions for pid in session_processes(sid)]


@pytest.fixture(scope="module")
def one_cpu_head():
    """A head with one CPU, as `make test` starts one (shared by the tests below, which leave it as it was)."""
    old = os.environ.pop("RAY_num_workers_soft_limit", None)
    try:
        with local_head(num_cpus=1) as reach:
            yield reach
    finally:
        if old is not None:
            os.environ["RAY_num_workers_soft_limit"] = old


def test_a_driver_without_the_token_is_told_how_to_get_it(tmp_path, monkeypatch, one_cpu_head):
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    result = subprocess.run([sys.executable, "-c", "from utils.runner import _start_ray; _start_ray()"],
                            env={**env, "RAY_ADDRESS": one_cpu_head["RAY_ADDRESS"], "RAY_AUTH_MODE": "token"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "RAY_AUTH_MODE=token and copy the head's" in result.stderr, result.stderr[-2000:]


STUDIES_IN_ONE_JOB = """
    from utils.runner import Study, _start_ray, read_results_file, run_study
    _start_ray()  # connected once, as a chapter is: its studies are one Ray job
    pids = set()
    for wave in range(4):
        study = Study("wave", value_trial, grid={{"a": [wave], "b": ["x"]}}, seeds=(0,), fixed={{"sleep": 0.3}})
        path = {folder!r} + f"/{{wave}}.jsonl"
        run_study(study, path, progress=False, complete=True)
        pids |= {{record["pid"] for record in read_results_file(path)[1]}}
    print("pids", len(pids))
"""


def test_concurrent_studies_on_one_head_keep_their_workers(tmp_path, monkeypatch, one_cpu_head):
    """Two chapters' studies at once on one head (as in `make test`): each job's trials run in the worker it
    started first, instead of Ray killing an idle worker of one job to start one for the other at every trial."""
    monkeypatch.setenv("HOME", str(tmp_path))
    env = environment(**one_cpu_head)
    drivers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        code = "from ray_support import value_trial\n" + textwrap.dedent(STUDIES_IN_ONE_JOB).format(
            folder=str(tmp_path / name))
        drivers.append(start_driver(code, env, tmp_path / f"{name}.log"))
    try:
        for driver in drivers:
            driver.wait(180)
    finally:
        kill_sessions([d.pid for d in drivers])
    logs = [(tmp_path / f"{name}.log").read_text() for name in ("a", "b")]
    assert all(d.returncode == 0 for d in drivers), logs
    assert [log.split()[-1] for log in logs] == ["1", "1"], logs
