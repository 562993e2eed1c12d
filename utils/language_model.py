"""Train a character language model on the Time Machine and measure it: one function for every chapter
that compares models (scratch against concise, RNN against GRU, gate ablations, hyperparameter sweeps).
"""
from dataclasses import dataclass, field
from typing import Callable

import math

import d2l.torch as d2l
import torch
from torch import nn
from torch.nn import functional as F

from utils.sampling import encode_prefix, generate
from utils.shapes import check_positive_numbers, check_sizes, check_switches, check_token_ids
from utils.training import TrainingResult, fit, perplexity, seed_everything

PREFIXES = ("time traveller", "it has")


@dataclass
class LanguageModelRun:
    """One trained language model and what was measured on it.

    ``train_perplexity`` and ``val_perplexity`` are one estimator on the training and the validation
    windows, measured after training (None with ``validate=False``): ``exp`` of the mean cross-entropy per token
    (:func:`utils.training.perplexity`). The curves of ``result`` are d2l's: the mean of per-minibatch
    perplexities, the training one averaged while the weights still change during the epoch.
    ``samples`` maps each prefix to the greedy continuation the model predicts.
    """

    name: str
    model: d2l.RNNLMScratch
    result: TrainingResult
    train_perplexity: float | None
    val_perplexity: float | None
    num_params: int
    samples: dict = field(default_factory=dict)

    def row(self) -> dict:
        """A flat dict for a pandas table."""
        return {"model": self.name, "train ppl": self.train_perplexity, "val ppl": self.val_perplexity,
                "s/epoch": self.result.seconds_per_epoch, "tokens/s": self.result.tokens_per_second,
                "params": self.num_params, **{f"sample '{p}'": s for p, s in self.samples.items()}}


def language_model(rnn: nn.Module, vocab_size: int, lr: float) -> d2l.RNNLMScratch:
    """Wrap a recurrent layer in d2l's language model: ``d2l.RNNLM`` for a concise ``d2l.RNN`` (which
    holds a ``torch.nn`` recurrent layer), ``d2l.RNNLMScratch`` for a from-scratch layer."""
    check_sizes("language_model", vocab_size=vocab_size)
    check_positive_numbers("language_model", lr=lr)
    if isinstance(rnn, d2l.RNN):
        return d2l.RNNLM(rnn, vocab_size=vocab_size, lr=lr)
    for attribute in ("num_hiddens", "sigma"):
        if not hasattr(rnn, attribute):
            raise TypeError(f"{type(rnn).__name__} cannot serve as the rnn of d2l.RNNLMScratch: "
                            f"it has no attribute {attribute!r}")
    return d2l.RNNLMScratch(rnn, vocab_size=vocab_size, lr=lr)


def train_language_model(name: str, make_rnn: Callable[[int], nn.Module], data, *, lr: float,
                         max_epochs: int, gradient_clip_val: float = 1.0, seed: int = 0,
                         prefixes=PREFIXES, num_preds: int = 50, display: bool = True,
                         validate: bool = True) -> LanguageModelRun:
    """Seed, build ``make_rnn(vocab_size)`` inside a d2l language model, train it with d2l's Trainer on
    ``data`` (a :class:`utils.data.TimeMachine`), and measure it (``validate=False``: no validation
    and training perplexity, for data without validation windows).

    ``prefixes`` is a tuple of strings, or one string (one prefix); each gets ``num_preds`` greedy characters.
    ``lr`` and ``gradient_clip_val`` must be positive and finite (d2l would silently turn clipping off for 0,
    a negative value or NaN). Everything is checked before training, the prefixes against the vocabulary too.
    """
    check_sizes("train_language_model", max_epochs=max_epochs, num_preds=num_preds)
    check_positive_numbers("train_language_model", lr=lr, gradient_clip_val=gradient_clip_val)
    check_switches("train_language_model", display=display, validate=validate)
    prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
    for prefix in prefixes:
        encode_prefix(prefix, data.vocab)
    seed_everything(seed)
    vocab_size = len(data.vocab)
    model = language_model(make_rnn(vocab_size), vocab_size, lr)
    trainer = d2l.Trainer(max_epochs=max_epochs, gradient_clip_val=gradient_clip_val)
    result = fit(model, data, trainer, ylabel="perplexity", display=display)
    samples = {prefix: generate(model, prefix, num_preds, data.vocab) for prefix in prefixes}
    return LanguageModelRun(name=name, model=model, result=result,
                            train_perplexity=perplexity(model, data.train_dataloader()) if validate else None,
                            val_perplexity=perplexity(model, data.val_dataloader()) if validate else None,
                            num_params=sum(p.numel() for p in model.parameters()), samples=samples)


def check_text(name: str, tokens, vocab_size: int) -> None:
    """``tokens`` must be one text to score: a 1-D ``torch.int64`` tensor of at least 2 token indices in
    ``[0, vocab_size)``."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1 or len(tokens) < 2:
        raise ValueError(f"{name} expects a 1-D tensor of at least 2 tokens, got "
                         f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
    check_token_ids(name, "the tokens", tokens, vocab_size)


@torch.no_grad()
def stream_perplexity(model, tokens: torch.Tensor) -> float:
    """Perplexity of a d2l language model on one text, every character after the first predicted from all the
    characters before it: the model reads ``tokens`` (shape ``(N,)``) from a zero state, carrying its state
    through the whole text. The same text and the same rule score any model, whatever its ``num_steps``.
    A diverged model gives ``inf``."""
    check_text("stream_perplexity", tokens, model.vocab_size)
    was_training = model.training
    model.eval()
    logits = model(tokens[None, :-1])  # (1, N - 1, vocab_size)
    model.train(was_training)
    loss = F.cross_entropy(logits[0].double(), tokens[1:]).item()
    return math.exp(loss) if math.isfinite(loss) and loss < 700 else math.inf
