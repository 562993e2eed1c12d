"""The runner on a real Ray cluster of two nodes on localhost, reached through RAY_ADDRESS exactly as a
cluster of several machines would be: every trial recorded once, a worker killed mid-trial retried, one
that dies at every attempt recorded as failed. Every Ray process the test starts, it stops."""
import socket
import subprocess
import sys

import pytest

from utils.runner import read_results_file

from ray_support import environment, kill_sessions, session_processes, start_driver

DRIVER = """
    from ray_support import crashing_trial
    from utils.runner import Study, run_study
    study = Study("cluster", crashing_trial, grid={{"a": [1, 2, 3, 4, 5, 6]}}, seeds=(0,),
                  fixed={{"markers": {markers!r}, "always": 6, "sleep": 1.0}})
    table = run_study(study, {path!r}, max_retries=2, progress=False)
    print("statuses", list(table.status))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_start(args, env, log):
    """``ray start ...`` in a session of its own; returns the session id of the daemons it leaves."""
    process = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *args,
                                "--num-cpus=1", "--object-store-memory=150000000", "--disable-usage-stats"],
                               env=env, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    code = process.wait(120)
    assert code == 0, open(log).read()
    return process.pid


def test_a_study_runs_on_a_two_node_cluster_and_survives_killed_workers(tmp_path):
    import ray
    if ray.is_initialized():
        ray.shutdown()  # this process holds no Ray of its own during the test
    port = free_port()
    env = environment(RAY_AUTH_MODE="token")  # a cluster started by `ray start` uses token authentication
    sessions = []
    try:
        sessions.append(ray_start(["--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                                   "--include-dashboard=false"], env, tmp_path / "head.log"))
        sessions.append(ray_start([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1"], env,
                                  tmp_path / "node.log"))
        assert all(session_processes(sid) for sid in sessions), "ray start left no daemon running"
        (tmp_path / "markers").mkdir()
        path = tmp_path / "cluster.jsonl"
        driver = start_driver(DRIVER.format(markers=str(tmp_path / "markers"), path=str(path)),
                              {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, tmp_path / "driver.log")
        sessions.append(driver.pid)
        driver.wait(300)
        log = (tmp_path / "driver.log").read_text()
        assert driver.returncode == 0, log
    finally:
        kill_sessions(sessions)
    header, records = read_results_file(path)
    machine = header["runs"][0]["machine"]
    assert machine["cluster_cpus"] == 2 and machine["ray_address"] == f"127.0.0.1:{port}"
    by_a = {r["trial"]["a"]: r for r in records}
    assert sorted(by_a) == [1, 2, 3, 4, 5, 6] and len(records) == 6  # nothing lost, nothing duplicated
    assert all(by_a[a]["status"] == "ok" and by_a[a]["results"]["value"] == a for a in range(1, 6))
    assert by_a[6]["status"] == "failed" and "Worker" in by_a[6]["error"], by_a[6]["error"]
    assert len({by_a[a]["results"]["node"] for a in range(1, 6)}) == 2, "the trials ran on one node only"
    assert not [pid for sid in sessions for pid in session_processes(sid)]
