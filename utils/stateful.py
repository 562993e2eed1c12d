"""The lecture notes' setting: old d2l's corpus and sequential minibatches, trained with the state carried
from one minibatch to the next and detached (truncated backpropagation through time).

Old d2l (before 1.0) read the Time Machine line by line, kept letters only (lower-cased, each line stripped
and the lines joined without a separator) and, with ``load_data_time_machine(batch_size, num_steps)``, its
first ``max_tokens=10000`` characters. ``seq_data_iter_sequential`` cut them into ``batch_size`` rows after a
random offset in ``[0, num_steps]`` and gave consecutive ``num_steps`` columns as minibatches: row ``b`` of a
minibatch continues row ``b`` of the previous one, so the state at the end of one minibatch is the right
start for the next. ``train_epoch_ch8`` started each epoch from a zero state and carried it through the
epoch, detached at each minibatch. d2l 1.0 instead draws random windows and starts each from a zero state;
:func:`train_stateful` does either on the same minibatches (``carry_state``).
"""
import math
import random
import re
import time
from dataclasses import dataclass, field

import d2l.torch as d2l
import torch
from torch import nn
from torch.nn import functional as F

from utils.data import time_machine_path
from utils.language_model import check_text, stream_perplexity
from utils.progress import progress_bar
from utils.shapes import check_counts, check_positive_numbers, check_sizes, check_switches, check_token_ids
from utils.training import seed_everything

LECTURE_TOKENS = 10_000


def old_d2l_corpus(max_tokens: int | None = None) -> tuple[list[int], d2l.Vocab]:
    """Old d2l's ``load_corpus_time_machine``: the corpus as token indices (the whole book with
    ``max_tokens=None``, or its first ``max_tokens`` characters) and the character vocabulary of the whole
    book (28 tokens)."""
    if max_tokens is not None:
        check_sizes("old_d2l_corpus", max_tokens=max_tokens)
    lines = time_machine_path().read_text().splitlines()
    tokens = [list(re.sub("[^A-Za-z]+", " ", line).strip().lower()) for line in lines]
    vocab = d2l.Vocab([token for line in tokens for token in line])
    corpus = [vocab[token] for line in tokens for token in line]
    if max_tokens is not None and max_tokens > len(corpus):
        raise ValueError(f"old_d2l_corpus was asked for the first {max_tokens} characters, but the book has only "
                         f"{len(corpus)}: pass max_tokens=None for the whole book")
    return (corpus if max_tokens is None else corpus[:max_tokens]), vocab


def sequential_minibatches(corpus, batch_size: int, num_steps: int, offset: int):
    """Old d2l's ``seq_data_iter_sequential`` with the offset given: ``batch_size`` rows of the corpus after
    ``offset``, read ``num_steps`` columns at a time. Yields ``(X, Y)`` of shape ``(batch_size, num_steps)``,
    ``Y`` shifted by one; consecutive minibatches continue each other's rows. The last, shorter columns are
    dropped, as old d2l did."""
    check_sizes("sequential_minibatches", batch_size=batch_size, num_steps=num_steps)
    check_counts("sequential_minibatches", offset=offset)
    if not 0 <= offset < len(corpus) - batch_size:
        raise ValueError(f"offset must be in [0, {len(corpus) - batch_size}), got {offset}")
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    Xs = torch.tensor(corpus[offset: offset + num_tokens]).reshape(batch_size, -1)
    Ys = torch.tensor(corpus[offset + 1: offset + 1 + num_tokens]).reshape(batch_size, -1)
    for start in range(0, (Xs.shape[1] // num_steps) * num_steps, num_steps):
        yield Xs[:, start: start + num_steps], Ys[:, start: start + num_steps]


def count_minibatches(corpus_length: int, batch_size: int, num_steps: int, offset: int) -> int:
    """How many minibatches :func:`sequential_minibatches` gives for an offset."""
    return ((corpus_length - offset - 1) // batch_size) // num_steps


@dataclass
class StatefulRun:
    """Training perplexity per epoch (``exp`` of the mean loss per token, as old d2l printed it), and the
    held-out perplexity every ``eval_every`` epochs."""

    train_perplexity: list = field(default_factory=list)
    eval_epochs: list = field(default_factory=list)
    held_out_perplexity: list = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0

    @property
    def best_epoch(self) -> int:
        """The epoch with the lowest held-out perplexity: where early stopping would have stopped."""
        if not self.held_out_perplexity:
            raise ValueError("this run has no held-out perplexity to pick the best epoch from: train it with "
                             "held_out=... (token indices of a text it does not train on)")
        return self.eval_epochs[min(range(len(self.held_out_perplexity)), key=self.held_out_perplexity.__getitem__)]


def train_stateful(model, corpus, *, batch_size: int, num_steps: int, lr: float, num_epochs: int,
                   carry_state: bool = True, clip: float = 1.0, seed: int = 0, held_out=None,
                   eval_every: int = 10, progress: bool = True) -> StatefulRun:
    """Train ``model`` (a d2l language model: ``model.rnn``, ``model.one_hot``, ``model.output_layer``) with
    minibatch SGD on sequential minibatches of ``corpus``, clipping the gradient norm at ``clip``.

    ``carry_state=True`` is old d2l's training: each epoch starts from a zero state, and each minibatch starts
    from the previous one's final state, detached (no gradient flows into the previous minibatch).
    ``carry_state=False`` starts every minibatch from a zero state, as d2l 1.0 does for its windows. Every
    ``eval_every`` epochs (and at the end) the model is scored on ``held_out`` (token indices) with
    :func:`utils.language_model.stream_perplexity`. ``lr`` and ``clip`` must be positive and finite, and
    ``corpus`` (token indices) long enough for one minibatch after any offset: ``batch_size * num_steps``
    tokens after up to ``num_steps``, plus the last target.
    """
    check_sizes("train_stateful", batch_size=batch_size, num_steps=num_steps, num_epochs=num_epochs,
                eval_every=eval_every)
    check_positive_numbers("train_stateful", lr=lr, clip=clip)
    check_switches("train_stateful", carry_state=carry_state, progress=progress)
    check_token_ids("train_stateful", "corpus", torch.as_tensor(corpus), model.vocab_size)
    needed = batch_size * num_steps + num_steps + 1
    if len(corpus) < needed:
        raise ValueError(f"train_stateful needs a corpus of at least {needed} tokens for batch_size={batch_size} "
                         f"and num_steps={num_steps} (one minibatch after an offset of up to num_steps), got "
                         f"{len(corpus)}: pass a longer corpus or smaller sizes")
    if held_out is not None:
        check_text("train_stateful", held_out, model.vocab_size)
    seed_everything(seed)
    offsets = random.Random(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    run = StatefulRun()
    start = time.perf_counter()
    for epoch in progress_bar(range(1, num_epochs + 1), desc="epochs", disable=not progress):
        minibatches = sequential_minibatches(corpus, batch_size, num_steps, offsets.randint(0, num_steps))
        total, count = train_epoch(model, optimizer, minibatches, carry_state=carry_state, clip=clip)
        run.train_perplexity.append(math.exp(total / count))
        run.tokens += count
        if held_out is not None and (epoch % eval_every == 0 or epoch == num_epochs):
            run.eval_epochs.append(epoch)
            run.held_out_perplexity.append(stream_perplexity(model, held_out))
    run.seconds = time.perf_counter() - start
    return run


def train_epoch(model, optimizer, minibatches, *, carry_state: bool, clip: float) -> tuple[float, int]:
    """One epoch of SGD over ``minibatches`` of ``(X, Y)``, each ``(batch_size, num_steps)``: the state starts at
    zero, and with ``carry_state`` each minibatch starts from the last one's final state, detached. Returns the
    summed cross-entropy and the number of predicted tokens."""
    state, total, count = None, 0.0, 0
    for X, Y in minibatches:
        if state is not None:
            state = _detach(state) if carry_state else None  # keep the values, cut the gradient's path
        outputs, state = model.rnn(model.one_hot(X), state)
        logits = model.output_layer(outputs)  # (batch_size, num_steps, vocab_size)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total, count = total + loss.item() * Y.numel(), count + Y.numel()
    return total, count


def _detach(state):
    """A state (a tensor, or a tuple of them for an LSTM) cut from the graph of the previous minibatch."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
