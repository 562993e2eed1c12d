"""The Time Machine corpus from d2l's data server, with a verified cache.

The file is fetched from d2l's URL (``d2l.DATA_URL``) into the git-ignored ``data/`` folder at the
repository root (see :mod:`utils.paths`) and checked against its published sha1, as d2l's own download does,
with two things d2l's download lacks: time limits (a server that accepts the connection but never answers,
or trickles its bytes, gives an error, not a hang) and a download into a temporary file that replaces the
cache only once its sha1 is right (a cut-off transfer leaves no empty or partial file). A valid cached copy
means no network access at all, and no write access to ``data/`` either. Whatever is wrong (no copy, a
corrupted one, a directory or an unreadable file in its place, no network, a server too slow), the error
names the file, what was expected and how to fix it. Nothing unverified is used.
"""
import hashlib
import os
import queue
import threading
import time
from pathlib import Path

import d2l.torch as d2l
import requests
import torch

from utils.paths import data_dir, repo_root
from utils.shapes import check_counts, check_ints, check_sizes

TIME_MACHINE_URL = d2l.DATA_URL + "timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
DOWNLOAD_TIMEOUT = (10, 30)  # seconds to connect, and to wait for each block of the answer
DOWNLOAD_DEADLINE = 120  # seconds for the whole download, however slowly the server trickles its bytes


class CorpusError(RuntimeError):
    """The cached corpus is missing, corrupted or unusable, and could not be downloaded again."""


def sha1_of(path: Path) -> str:
    """Hex sha1 digest of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_state(path: Path) -> str | None:
    """None when ``path`` holds the verified corpus; otherwise what is wrong with it, in a few words."""
    if path.is_dir():
        raise CorpusError(f"{path} is a directory, but the corpus must be a file there. Fix: remove the directory "
                          f"(rm -r {path}) and run again, or copy a verified timemachine.txt in its place.")
    if not path.exists():
        return "missing"
    try:
        found = sha1_of(path)
    except OSError as err:
        raise CorpusError(f"{path} cannot be read ({type(err).__name__}: {err}). Fix: make it readable "
                          f"(chmod u+rw {path}) or delete it so that it is downloaded again.") from err
    return None if found == TIME_MACHINE_SHA1 else f"corrupted (sha1 {found})"


def _blocks(url: str, timeout, deadline: float):
    """The blocks of ``url``'s answer as they arrive, the whole answer within ``deadline`` seconds.

    ``timeout`` bounds each read only, so a server sending a byte every few seconds would keep a plain loop
    busy for days; here a helper thread reads and this generator waits for it at most until the deadline
    (``TimeoutError``). A thread left reading after the deadline writes no file; it ends when the server
    stops sending or stalls for a read timeout."""
    arrived = queue.Queue()

    def read():
        try:
            with requests.get(url, stream=True, timeout=timeout) as response:
                response.raise_for_status()
                for block in response.iter_content(1 << 16):
                    arrived.put(block)
            arrived.put(None)
        except Exception as err:  # raised again in the caller's thread
            arrived.put(err)

    threading.Thread(target=read, name="download", daemon=True).start()
    end = time.monotonic() + deadline
    while True:
        try:
            item = arrived.get(timeout=max(end - time.monotonic(), 0))
        except queue.Empty:
            raise TimeoutError(f"{url} did not send the whole file within the deadline of {deadline} s (the server "
                               f"is too slow); try again later, or allow more time by setting "
                               f"utils.data.DOWNLOAD_DEADLINE") from None
        if item is None:
            return
        if isinstance(item, Exception):
            raise item
        yield item


def download_verified(url: str, path: Path, sha1: str, timeout=DOWNLOAD_TIMEOUT,
                      deadline: float = DOWNLOAD_DEADLINE) -> None:
    """Download ``url`` to ``path`` through a temporary file beside it, within ``deadline`` seconds in all;
    ``path`` is replaced only when the download completed and its sha1 is ``sha1``. Raises ``requests``
    errors (including timeouts), ``TimeoutError`` past the deadline and :class:`CorpusError` for a wrong
    sha1."""
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as f:
            for block in _blocks(url, timeout, deadline):
                f.write(block)
        found = sha1_of(partial)
        if found != sha1:
            raise CorpusError(f"downloaded {url}, but its sha1 is {found}, expected {sha1}: the server sent "
                              f"something else. {path} was left as it was; try again later, or copy a verified "
                              f"copy to {path}.")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def time_machine_path() -> Path:
    """Path of the verified corpus in the cache, downloading it from d2l's server if needed. Reading a
    verified copy needs no write access to ``data/``; a download does, and is refused before it starts."""
    path = repo_root() / "data" / "timemachine.txt"
    state = _cached_state(path)
    if state is None:
        return path
    data_dir()  # created, or an error if it is a file or read-only
    print(f"Downloading {TIME_MACHINE_URL} to {path} ({path.name} is {state})...", flush=True)
    try:
        download_verified(TIME_MACHINE_URL, path, TIME_MACHINE_SHA1, timeout=DOWNLOAD_TIMEOUT,
                          deadline=DOWNLOAD_DEADLINE)
    except CorpusError:
        raise
    except (requests.RequestException, OSError) as err:  # offline, refused, timed out, too slow, cut off
        raise CorpusError(
            f"{path} is {state} and the download from {TIME_MACHINE_URL} failed "
            f"({type(err).__name__}: {err}). Expected sha1 {TIME_MACHINE_SHA1}. Fix: connect to the "
            f"internet and run again, or copy a verified timemachine.txt to {path}.") from err
    return path


class TimeMachine(d2l.TimeMachine):
    """``d2l.TimeMachine`` reading the verified corpus from the course's cache.

    Same arguments as d2l: ``TimeMachine(batch_size, num_steps, num_train=10000, num_val=5000)``;
    ``X`` and ``Y`` have shape ``(num_sequences, num_steps)``, and ``vocab`` has 28 tokens
    (26 letters, space, ``<unk>``). Training windows are the first ``num_train`` (window ``i`` starts at
    character ``i``), validation windows the ``num_val`` after them; the arguments are checked before
    anything is built (d2l would silently train on nearly everything for a negative ``num_train``).
    """

    def __init__(self, batch_size, num_steps, num_train=10000, num_val=5000):
        check_sizes("TimeMachine", batch_size=batch_size, num_steps=num_steps, num_train=num_train)
        check_counts("TimeMachine", num_val=num_val)  # 0: no validation windows
        available = len(self._preprocess(self._download())) - num_steps
        if num_train + num_val > available:
            raise ValueError(f"TimeMachine has {available} windows of num_steps={num_steps} characters, but "
                             f"num_train + num_val = {num_train} + {num_val} = {num_train + num_val} were asked for")
        super().__init__(batch_size, num_steps, num_train=num_train, num_val=num_val)

    def tokens(self, start: int, stop: int):
        """The token indices of characters ``start`` to ``stop`` (excluded) of the preprocessed corpus, a
        tensor of shape ``(stop - start,)``: held-out text is read from here."""
        if not hasattr(self, "_corpus"):  # built once: tokenizing the whole book takes tens of milliseconds
            self._corpus, _ = self.build(self._download(), self.vocab)
        corpus = self._corpus
        check_ints("TimeMachine.tokens", start=start, stop=stop)
        if not 0 <= start < stop <= len(corpus):
            raise ValueError(f"TimeMachine.tokens expects 0 <= start < stop <= {len(corpus)}, got {start}, {stop}")
        return torch.tensor(corpus[start:stop])

    def _download(self):
        if not hasattr(self, "_text"):
            self._text = time_machine_path().read_text()
        return self._text
