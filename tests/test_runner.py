"""The runner on a local Ray: a grid x seeds into a results file, resumed after interruptions, failures
recorded, other studies' files refused."""
import json
import math
import os
import signal
import sys

import pytest

from utils import runner
from utils.runner import (ResultsFileBusy, ResultsFileError, Study, StudyMismatch, provenance, read_results_file,
                          results_table, run_study)

import ray_support
from ray_support import environment, kill_sessions, records_in, start_driver, value_trial, wait_for


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray connection for this module (the cluster of RAY_ADDRESS, as under `make test`, or a local Ray),
    whose workers import ray_support (the runner passes PYTHONPATH on to them); closed at the end."""
    import ray
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = environment()["PYTHONPATH"]
    if ray.is_initialized():
        ray.shutdown()
    runner._start_ray()
    yield
    ray.shutdown()
    if previous is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = previous


def study(tmp_path, seeds=(0, 1), **fixed):
    return Study("test", value_trial, grid={"a": [1, 2], "b": ["x", "yy"]}, seeds=seeds,
                 fixed={"calls": str(tmp_path / "calls.jsonl"), **fixed})


def calls(tmp_path):
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def expected(trial):
    return trial["a"] * 10 + len(trial["b"]) + trial["seed"]


def test_every_configuration_and_seed_is_one_record_in_trial_order(tmp_path):
    s = study(tmp_path)
    table = run_study(s, tmp_path / "r.jsonl", progress=False)
    assert table[["a", "b", "seed"]].to_dict("records") == s.trials()
    assert list(table.value) == [expected(t) for t in s.trials()]
    assert set(table.status) == {"ok"} and len(calls(tmp_path)) == 8
    header, records = read_results_file(tmp_path / "r.jsonl")
    assert header["study"] == s.spec() and len(records) == 8
    machine = header["runs"][0]["machine"]
    assert machine["cores"] == os.cpu_count() and machine["torch_threads_per_trial"] == 1 and machine["ray"]
    assert "1 torch thread(s) per trial" in provenance(tmp_path / "r.jsonl")


def test_a_rerun_runs_nothing_that_finished(tmp_path):
    s, path = study(tmp_path), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    before = path.read_bytes()
    table = run_study(s, path, progress=False)
    assert len(calls(tmp_path)) == 8 and path.read_bytes() == before and len(table) == 8


def test_a_failed_trial_is_recorded_and_tried_again_by_the_next_run(tmp_path):
    path = tmp_path / "r.jsonl"
    table = run_study(study(tmp_path, fail_at=2), path, progress=False)
    failed = table[table.a == 2]
    assert set(failed.status) == {"failed"} and len(failed) == 4
    assert all("RuntimeError: trial a=2 failed on purpose" in e for e in failed.error)
    assert set(table[table.a == 1].status) == {"ok"}
    with pytest.raises(StudyMismatch):  # the fixed settings are part of the study
        run_study(study(tmp_path), path, progress=False)


def test_a_diverged_trial_records_inf(tmp_path):
    table = run_study(study(tmp_path, diverge_at=1), tmp_path / "r.jsonl", progress=False)
    assert set(table.status) == {"ok"} and all(math.isinf(v) for v in table[table.a == 1].value)
    assert math.isinf(results_table(tmp_path / "r.jsonl").value.iloc[0])  # inf survives the file


def test_failed_trials_are_retried_on_rerun_and_replace_their_record(tmp_path):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    header, records = read_results_file(path)
    records[0].update(status="failed", error="WorkerCrashedError: ...", results={})
    runner._write_atomically(path, header, records)
    run_study(s, path, progress=False)
    table = results_table(path, s, complete=True)
    assert len(table) == 4 and len(calls(tmp_path)) == 5 and list(table.value) == [expected(t) for t in s.trials()]


def test_a_file_of_another_study_is_refused_naming_the_differences(tmp_path):
    path = tmp_path / "r.jsonl"
    run_study(study(tmp_path, seeds=(0,)), path, progress=False)
    other = Study("test", value_trial, grid={"a": [1, 2, 3], "b": ["x", "yy"]}, seeds=(0,),
                  fixed={"calls": str(tmp_path / "calls.jsonl"), "offset": 1})
    with pytest.raises(StudyMismatch) as err:
        run_study(other, path, progress=False)
    assert "grid a: the file has [1, 2], asked for [1, 2, 3]" in str(err.value)
    assert "fixed offset: the file has '<absent>', asked for 1" in str(err.value)
    with pytest.raises(StudyMismatch, match="seeds: the file has \\[0\\], asked for \\[0, 1\\]"):
        results_table(path, study(tmp_path))
    assert len(calls(tmp_path)) == 4


def test_an_incomplete_file_is_refused_where_complete_results_are_needed(tmp_path):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    header, records = read_results_file(path)
    runner._write_atomically(path, header, records[:3])
    with pytest.raises(ResultsFileError, match="lacks 1 of 4 finished trials"):
        results_table(path, s, complete=True)


def test_a_merge_conflict_line_is_named_and_nothing_trains(tmp_path):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["<<<<<<< HEAD"] + lines[2:]) + "\n")
    with pytest.raises(ResultsFileError, match="line 3 is not a trial record of this study: '<<<<<<< HEAD'"):
        run_study(s, path, progress=False)
    assert len(calls(tmp_path)) == 4


def test_a_duplicated_record_is_named(tmp_path):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(ResultsFileError, match="line 6: trial .* appears twice"):
        results_table(path)


def test_a_read_only_results_file_fails_before_any_trial(tmp_path, monkeypatch):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    runner._write_atomically(path, {"format": runner.FORMAT, "study": s.spec(), "runs": []}, [])  # trials to run
    monkeypatch.setattr(runner.os, "access", lambda p, mode: str(p) != str(path))
    with pytest.raises(PermissionError, match="r.jsonl is read-only: no trial's result could be saved"):
        run_study(s, path, progress=False)
    assert calls(tmp_path) == []


def test_a_second_run_on_the_same_file_stops_at_once(tmp_path):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    with runner._Lock(path):
        with pytest.raises(ResultsFileBusy, match="another run is writing .*r.jsonl"):
            run_study(s, path, progress=False)
    assert calls(tmp_path) == []


def test_bad_studies_are_refused():
    with pytest.raises(ValueError, match="grid\\['a'\\] is empty"):
        Study("s", value_trial, grid={"a": []})
    with pytest.raises(ValueError, match="seeds must be distinct non-negative ints"):
        Study("s", value_trial, grid={"a": [1]}, seeds=(0, 0))
    with pytest.raises(ValueError, match="\\['seed'\\] appear in more than one"):
        Study("s", value_trial, grid={"a": [1]}, fixed={"seed": 1})
    with pytest.raises(TypeError, match="trial must be a function"):
        Study("s", "value_trial", grid={"a": [1]})
    assert Study("s", value_trial, grid={"a": (v for v in [1, 2])}).grid == {"a": [1, 2]}  # a generator, read once


INTERRUPTED_DRIVER = """
    import sys
    from ray_support import value_trial
    from utils.runner import Study, run_study
    study = Study("test", value_trial, grid={{"a": [1, 2, 3], "b": ["x", "yy"]}}, seeds=(0,),
                  fixed={{"calls": {calls!r}, "sleep": 1.0, "offset": {offset}}})
    run_study(study, {path!r}, retrain={retrain}, progress=False)
"""


def interrupted_run(tmp_path, signum, *, offset=0, retrain=False, after=2):
    """A driver in its own process, stopped by ``signum`` once ``after`` records are in the file."""
    path = tmp_path / "r.jsonl"
    code = INTERRUPTED_DRIVER.format(calls=str(tmp_path / "calls.jsonl"), path=str(path), offset=offset,
                                     retrain=retrain)
    driver = start_driver(code, environment(), tmp_path / "driver.log")
    start = records_in(path) if retrain else 0
    try:
        wait_for(lambda: records_in(path) >= start + after if not retrain else
                 sum(r["run"] == 1 for r in read_results_file(path)[1]) >= after, 120, "records")
        driver.send_signal(signum)
        driver.wait(60)
    finally:
        kill_sessions([driver.pid])
    return path, (tmp_path / "driver.log").read_text()


def interrupted_study(tmp_path, offset=0):
    return Study("test", value_trial, grid={"a": [1, 2, 3], "b": ["x", "yy"]}, seeds=(0,),
                 fixed={"calls": str(tmp_path / "calls.jsonl"), "sleep": 1.0, "offset": offset})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed driver"])
def test_an_interrupted_run_resumes_with_nothing_lost_or_duplicated(tmp_path, signum):
    path, log = interrupted_run(tmp_path, signum)
    header, records = read_results_file(path)  # every line is a whole record
    assert 2 <= len(records) < 6, log
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in log
    s = interrupted_study(tmp_path)
    table = run_study(s, path, progress=False)
    assert table[["a", "b", "seed"]].to_dict("records") == s.trials() and set(table.status) == {"ok"}
    assert list(table.value) == [expected(t) for t in s.trials()]
    finished_first = {json.dumps(r["trial"], sort_keys=True) for r in records}
    trained_again = [c for c in calls(tmp_path)[-(6 - len(records)):]]
    assert not finished_first & {json.dumps(c, sort_keys=True) for c in trained_again}


def test_an_interrupted_retrain_loses_no_record(tmp_path):
    s, path = interrupted_study(tmp_path), tmp_path / "r.jsonl"
    header = {"format": runner.FORMAT, "study": s.spec(), "runs": [{"command": "an earlier run"}]}
    records = [{"trial": t, "status": "ok", "error": None, "results": {"value": -1}, "seconds": 0.0, "host": None,
                "pid": None, "run": 0} for t in s.trials()]
    runner._write_atomically(path, header, records)
    path, log = interrupted_run(tmp_path, signal.SIGINT, retrain=True)
    table = results_table(path, s, complete=True)
    assert len(table) == 6, log
    new = table[table.value != -1]
    assert 2 <= len(new) < 6 and list(new.value) == [expected(t) for t in new[["a", "b", "seed"]].to_dict("records")]
    assert (table.value == -1).sum() == 6 - len(new)  # the old records not yet retrained are still there


def test_the_default_file_is_named_after_the_study_and_its_settings(course_root):
    s = study(course_root, seeds=(0,))
    path = runner.default_path(s)
    assert path.parent == course_root / "build" / "runs" and path.name.startswith("test-")
    assert runner.default_path(study(course_root, seeds=(0, 1))) != path
    assert runner.default_path(study(course_root, seeds=(0,))) == path


def blocking_trial(config):
    import time
    if config["a"] == 1:
        time.sleep(1e6)
    return {"value": config["a"]}


def test_a_trial_past_its_time_limit_is_recorded_as_failed_and_the_others_finish(tmp_path):
    s = Study("blocking", blocking_trial, grid={"a": [1, 2]})
    table = run_study(s, tmp_path / "r.jsonl", progress=False, time_limit=2)
    assert list(table.status) == ["failed", "ok"] and table.value[1] == 2
    assert "time limit of 2 s" in table.error[0]


def test_impossible_or_endless_requests_are_refused_before_any_trial(tmp_path):
    s = study(tmp_path, seeds=(0,))
    with pytest.raises(ValueError, match="cpus_per_trial=100, but the Ray cluster has .* CPUs"):
        run_study(s, tmp_path / "r.jsonl", cpus_per_trial=100, progress=False)
    for bad in (-1, "2", 1.5):
        with pytest.raises(ValueError, match="max_retries to be a non-negative int"):
            run_study(s, tmp_path / "r.jsonl", max_retries=bad, progress=False)
    for bad in (0, -1, math.nan, "10"):
        with pytest.raises(ValueError, match="time_limit to be a positive finite number"):
            run_study(s, tmp_path / "r.jsonl", time_limit=bad, progress=False)
    assert calls(tmp_path) == []


def test_a_retrain_that_fails_keeps_the_earlier_ok_record(tmp_path, capsys):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    (tmp_path / "calls.jsonl").unlink()
    (tmp_path / "calls.jsonl").mkdir()  # the same study, but value_trial cannot write its calls now: every trial fails
    table = run_study(s, path, retrain=True, progress=False)
    assert set(table.status) == {"ok"} and list(table.value) == [expected(t) for t in s.trials()]
    assert "4 of 4 trials failed (4 kept their earlier ok result)" in capsys.readouterr().out


def clashing_trial(config):
    return {"a": 999, "status": "great"} if config["a"] == 1 else {1: "x", "1": "y"}


def test_results_that_would_overwrite_the_trials_columns_or_lose_a_key_fail_the_trial(tmp_path):
    table = run_study(Study("clash", clashing_trial, grid={"a": [1, 2]}), tmp_path / "r.jsonl", progress=False)
    assert list(table.status) == ["failed", "failed"] and list(table.a) == [1, 2]
    assert "results named ['a', 'status'], which are the table's own columns" in table.error[0]
    assert "result names must be strings" in table.error[1]


def test_a_record_outside_the_grid_is_named(tmp_path):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["trial"]["a"] = 99
    path.write_text("\n".join(lines + [json.dumps(record)]) + "\n")
    with pytest.raises(ResultsFileError, match="line 6: trial .*'a': 99.* is not in the study's grid"):
        results_table(path, s)


def test_records_made_by_another_version_of_the_trial_code_are_trained_again(tmp_path, capsys):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    header, records = read_results_file(path)
    header["runs"][0]["trial_code"] = "0123456789ab"  # as if value_trial's body had changed since
    runner._write_atomically(path, header, records)
    run_study(s, path, progress=False)
    assert len(calls(tmp_path)) == 8 and "4 records in r.jsonl were made by another version" in capsys.readouterr().out
    header, _ = read_results_file(path)
    assert header["runs"][-1]["trial_code"] == runner.code_fingerprint(value_trial)
    run_study(s, path, progress=False)
    assert len(calls(tmp_path)) == 8  # now up to date: nothing trains


def test_harmless_files_and_numpy_seeds_are_taken(tmp_path):
    import numpy as np
    s, path = study(tmp_path, seeds=(np.int64(0), np.int32(1))), tmp_path / "r.jsonl"
    assert s.seeds == (0, 1)
    run_study(s, path, progress=False)
    path.write_text(path.read_text() + "\n\n")  # a trailing blank line, as an editor may add
    os.chmod(path, 0o444)  # complete and read-only: nothing to write, so nothing to refuse
    try:
        assert len(run_study(s, path, progress=False)) == 8
    finally:
        os.chmod(path, 0o644)


def test_unreadable_files_and_bad_studies_get_the_courses_own_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ResultsFileError, match="is not text"):
        read_results_file(path)
    path.write_text(json.dumps({"format": runner.FORMAT}) + "\n")
    with pytest.raises(ResultsFileError, match="expected the header of a results file"):
        read_results_file(path)
    with pytest.raises(TypeError, match="grid\\['a'\\] must be a list of values, got None"):
        Study("s", value_trial, grid={"a": None})
    with pytest.raises(TypeError, match="names must be strings, got \\[1\\]"):
        Study("s", value_trial, grid={1: [1, 2]})
    with pytest.raises(TypeError, match="fixed must be a dict"):
        Study("s", value_trial, grid={"a": [1]}, fixed=[1])
    with pytest.raises(TypeError, match="run_study expects a Study"):
        run_study("study", path)


@pytest.mark.parametrize("address, message", [("127.0.0.1:1", "no Ray head answers there"),
                                              ("garbage", "expected HOST:PORT of a Ray head")])
def test_a_wrong_ray_address_fails_within_seconds_naming_it(monkeypatch, address, message):
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(runner.RayUnavailable, match=f"RAY_ADDRESS='{address}': {message}"):
        runner.ray_address()


def test_the_command_line_shows_a_results_file_and_refuses_what_it_cannot_do(tmp_path, capsys):
    s, path = study(tmp_path, seeds=(0,)), tmp_path / "r.jsonl"
    run_study(s, path, progress=False)
    assert runner.main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "run 0:" in out and "value" in out
    with pytest.raises(SystemExit) as exit_:
        runner.main(["show", str(tmp_path / "missing.jsonl")])
    assert exit_.value.code == 2 and "is not a file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        runner.main(["--help"])
    assert exit_.value.code == 0 and "show" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        runner.main(["head"])
    assert exit_.value.code == 2 and "head needs a command" in capsys.readouterr().err


@pytest.mark.parametrize("failures, started", [(1, True), (runner.RAY_START_TRIES, False)])
def test_a_local_start_that_times_out_is_tried_again_then_says_what_to_do(monkeypatch, failures, started):
    import ray
    attempts = []

    def init(**kwargs):
        attempts.append(kwargs["address"])
        if len(attempts) <= failures:
            raise Exception("The current node timed out during startup. This could happen because ...")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    if started:
        assert runner._start_ray() is True and attempts == ["local", "local"]
    else:
        with pytest.raises(runner.RayUnavailable, match="did not start on this machine in 3 tries.*too busy.*"
                                                        "RAY_ADDRESS=127.0.0.1:6379"):
            runner._start_ray()
        assert len(attempts) == runner.RAY_START_TRIES
