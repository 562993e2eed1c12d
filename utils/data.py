"""The Time Machine corpus through d2l's real download path, with a verified cache.

The file is fetched from d2l's data server into the git-ignored ``data/`` folder at the repository root
(see :mod:`utils.paths`) and checked against its published sha1. A valid cached copy means no network
access at all. A corrupted or truncated copy is downloaded again; if that fails (offline), the error
names the file, the expected sha1 and how to fix it. Nothing unverified is ever used.
"""
import hashlib
from pathlib import Path

import d2l.torch as d2l

from utils.paths import data_dir

TIME_MACHINE_URL = d2l.DATA_URL + "timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"


class CorpusError(RuntimeError):
    """The cached corpus is missing or corrupted and could not be downloaded again."""


def sha1_of(path: Path) -> str:
    """Hex sha1 digest of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def time_machine_path() -> Path:
    """Path of the verified corpus in the cache, downloading it through ``d2l.download`` if needed."""
    folder = data_dir()
    path = folder / "timemachine.txt"
    found = sha1_of(path) if path.exists() else None
    if found == TIME_MACHINE_SHA1:
        return path
    state = "missing" if found is None else f"corrupted (sha1 {found})"
    try:
        d2l.download(TIME_MACHINE_URL, str(folder), TIME_MACHINE_SHA1)
    except Exception as err:  # requests raises several types; all mean "could not download"
        raise CorpusError(
            f"{path} is {state} and the download from {TIME_MACHINE_URL} failed "
            f"({type(err).__name__}: {err}). Expected sha1 {TIME_MACHINE_SHA1}. Fix: connect to the "
            f"internet and run again, or copy a verified timemachine.txt to {path}.") from err
    found = sha1_of(path)
    if found != TIME_MACHINE_SHA1:
        raise CorpusError(
            f"downloaded {path} from {TIME_MACHINE_URL}, but its sha1 is {found}, expected "
            f"{TIME_MACHINE_SHA1}. Delete the file and try again later, or copy a verified copy there.")
    return path


class TimeMachine(d2l.TimeMachine):
    """``d2l.TimeMachine`` reading the verified corpus from the course's cache.

    Same arguments as d2l: ``TimeMachine(batch_size, num_steps, num_train=10000, num_val=5000)``;
    ``X`` and ``Y`` have shape ``(num_sequences, num_steps)``, and ``vocab`` has 28 tokens
    (26 letters, space, ``<unk>``).
    """

    def _download(self):
        return time_machine_path().read_text()
