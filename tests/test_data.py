"""The Time Machine cache: verified by sha1, re-downloaded when corrupted, clear errors offline."""
import shutil
from pathlib import Path

import d2l.torch as d2l
import pytest
import requests

from utils import data


@pytest.fixture(scope="session")
def verified_text():
    """The verified corpus bytes from the real cache (seeded into data/ by .ci/run, or downloaded).

    Session-scoped, so it is read before ``course_root`` points the cache elsewhere."""
    path = data.time_machine_path()
    assert data.sha1_of(path) == data.TIME_MACHINE_SHA1
    return path.read_bytes()


def offline(*args, **kwargs):
    raise requests.ConnectionError("no network in this test")


class Response:
    """What ``requests.get(url, stream=True)`` returns, serving ``content`` in blocks."""

    def __init__(self, content):
        self.content = content

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def raise_for_status(self):
        pass

    def iter_content(self, size):
        for start in range(0, len(self.content), size):
            yield self.content[start:start + size]


def serving(content):
    return lambda *args, **kwargs: Response(content)


def test_valid_cache_is_used_without_network(course_root, verified_text, monkeypatch):
    (course_root / "data").mkdir()
    (course_root / "data" / "timemachine.txt").write_bytes(verified_text)
    monkeypatch.setattr(requests, "get", offline)
    assert data.time_machine_path() == course_root / "data" / "timemachine.txt"


def test_truncated_cache_offline_names_file_sha1_and_fix(course_root, verified_text, monkeypatch):
    cache = course_root / "data" / "timemachine.txt"
    cache.parent.mkdir()
    cache.write_bytes(verified_text[: len(verified_text) // 2])
    monkeypatch.setattr(requests, "get", offline)
    with pytest.raises(data.CorpusError) as err:
        data.time_machine_path()
    message = str(err.value)
    assert str(cache) in message and data.TIME_MACHINE_SHA1 in message and "corrupted" in message
    assert "copy a verified timemachine.txt" in message


def test_missing_cache_offline_is_a_clear_error(course_root, monkeypatch):
    monkeypatch.setattr(requests, "get", offline)
    with pytest.raises(data.CorpusError, match="is missing and the download"):
        data.time_machine_path()


def test_truncated_cache_is_replaced_when_the_download_works(course_root, verified_text, monkeypatch):
    cache = course_root / "data" / "timemachine.txt"
    cache.parent.mkdir()
    cache.write_bytes(verified_text[:1000])
    urls = []
    monkeypatch.setattr(requests, "get", lambda url, **kw: urls.append(url) or serving(verified_text)())
    assert data.time_machine_path() == cache
    assert cache.read_bytes() == verified_text
    assert urls == [d2l.DATA_URL + "timemachine.txt"]


def test_download_with_wrong_content_is_rejected(course_root, monkeypatch):
    monkeypatch.setattr(requests, "get", serving(b"<html>404 not found</html>"))
    with pytest.raises(data.CorpusError, match="but its sha1 is"):
        data.time_machine_path()


def test_time_machine_loads_from_the_course_cache_in_any_directory(course_root, verified_text, monkeypatch, tmp_path):
    (course_root / "data").mkdir()
    (course_root / "data" / "timemachine.txt").write_bytes(verified_text)
    monkeypatch.setattr(requests, "get", offline)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    tm = data.TimeMachine(batch_size=2, num_steps=5, num_train=10, num_val=4)
    assert len(tm.vocab) == 28
    assert tuple(tm.X.shape[1:]) == (5,) and tm.X.shape == tm.Y.shape
    assert (tm.X[1:] == tm.Y[:-1]).all()  # Y is X shifted by one token
    assert tm.vocab.to_tokens(tm.X[0].tolist())[:4] == list("the ")
    assert not (elsewhere / "data").exists() and not Path("../data").exists()


def test_tokens_builds_the_corpus_once(course_root, verified_text, monkeypatch):
    (course_root / "data").mkdir()
    (course_root / "data" / "timemachine.txt").write_bytes(verified_text)
    tm = data.TimeMachine(batch_size=2, num_steps=5, num_train=20, num_val=10)
    calls, build = [], tm.build
    monkeypatch.setattr(tm, "build", lambda *args: calls.append(1) or build(*args))
    first, again = tm.tokens(0, 4), tm.tokens(0, 4)
    assert tm.vocab.to_tokens(first.tolist()) == list("the ") and first.equal(again) and len(calls) == 1
