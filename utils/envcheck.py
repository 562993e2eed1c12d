"""Environment self-check: ``python -m utils.envcheck`` prints OK or FAIL for each requirement and for
each part of d2l the course uses, and exits non-zero if anything fails.

The d2l checks live in :data:`D2L_CHECKS` (one small call per API, at tiny sizes); the tests run each
of them, and check that every ``d2l.<name>`` used in ``utils/`` and ``notebooks/`` has one.
"""
import importlib.metadata
import sys
from pathlib import Path

from packaging.requirements import Requirement

from utils.cli import ArgumentParser

REQUIREMENT_FILES = ("requirements.txt", "requirements-nodeps.txt")


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file (comments and blank lines skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def check_requirement(req: Requirement) -> tuple[bool, str]:
    """Whether the installed distribution satisfies ``req``, and a one-line reason."""
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False, f"{req} (not installed)"
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return False, f"{req} (found {version})"
    return True, f"{req} (found {version})"


def _time_machine():
    from utils.data import TimeMachine
    data = TimeMachine(batch_size=4, num_steps=5, num_train=16, num_val=8)
    assert len(data.vocab) == 28 and tuple(data.X.shape[1:]) == (5,)
    return data


def _vocab():
    import d2l.torch as d2l
    vocab = d2l.Vocab(list("hello world"))
    assert vocab.to_tokens(vocab[list("hello")]) == list("hello")


def _tiny_language_model(rnn_factory, lm_class):
    import d2l.torch as d2l
    data = _time_machine()
    model = lm_class(rnn_factory(len(data.vocab)), vocab_size=len(data.vocab), lr=1)
    model.board.display = False
    trainer = d2l.Trainer(max_epochs=1, gradient_clip_val=1)
    trainer.fit(model, data)
    text = model.predict("it ", 3, data.vocab)
    assert len(text) == 6, text
    return model


def _rnnlm_scratch():
    import d2l.torch as d2l
    _tiny_language_model(lambda v: d2l.RNNScratch(v, 4), d2l.RNNLMScratch)


def _rnnlm_concise():
    import d2l.torch as d2l
    _tiny_language_model(lambda v: d2l.RNN(v, 4), d2l.RNNLM)
    _tiny_language_model(lambda v: d2l.GRU(v, 4, num_layers=1), d2l.RNNLM)


def _module():
    import d2l.torch as d2l
    import torch

    class Tiny(d2l.Module):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(2, 1)

    assert Tiny()(torch.ones(3, 2)).shape == (3, 1)


def _progress_board():
    import d2l.torch as d2l
    board = d2l.ProgressBoard(xlabel="x", display=False)
    for i in range(4):
        board.draw(i, i * i, "y", every_n=2)
    assert [p.y for p in board.data["y"]] == [0.5, 6.5]


def _try_gpu():
    import d2l.torch as d2l
    import torch
    assert isinstance(d2l.try_gpu(), torch.device) and d2l.num_gpus() >= 0


def _plotting():
    import d2l.torch as d2l
    d2l.use_svg_display()
    d2l.plt.close(d2l.plt.figure())


D2L_CHECKS = {
    "TimeMachine": _time_machine,
    "DATA_URL": _time_machine,
    "Vocab": _vocab,
    "Module": _module,
    "HyperParameters": _module,
    "ProgressBoard": _progress_board,
    "Trainer": _rnnlm_scratch,
    "RNNScratch": _rnnlm_scratch,
    "RNNLMScratch": _rnnlm_scratch,
    "RNN": _rnnlm_concise,
    "RNNLM": _rnnlm_concise,
    "GRU": _rnnlm_concise,
    "try_gpu": _try_gpu,
    "num_gpus": _try_gpu,
    "use_svg_display": _plotting,
    "plt": _plotting,
}


def run_d2l_check(name: str) -> tuple[bool, str]:
    """Run the check of ``d2l.<name>``; return (passed, message)."""
    try:
        D2L_CHECKS[name]()
    except Exception as err:  # a check reports any failure, whatever its type
        return False, f"d2l.{name}: {type(err).__name__}: {err}"
    return True, f"d2l.{name}"


def main(root: Path | None = None, argv: list[str] | None = None) -> int:
    """Check the environment of the course at ``root`` (default: this checkout); ``argv``: the command line's
    arguments (none when called from Python). Returns 1 if anything failed."""
    ArgumentParser(prog="python -m utils.envcheck",
                   description="Check the course's environment: print OK or FAIL for each requirement and for each "
                               "part of d2l the course uses; exit with status 1 if anything fails.",
                   ).parse_args(argv or [])
    root = root or Path(__file__).resolve().parents[1]
    results = []
    for name in REQUIREMENT_FILES:
        results += [check_requirement(req) for req in read_requirements(root / name)]
    results += [run_d2l_check(name) for name in D2L_CHECKS]
    for ok, message in results:
        print(f"{'OK  ' if ok else 'FAIL'} {message}")
    failed = sum(not ok for ok, _ in results)
    print(f"environment check: {len(results) - failed} OK, {failed} FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(argv=sys.argv[1:]))
