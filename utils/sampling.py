"""Text from a trained character language model: greedy decoding, and sampling with a temperature and top-k.

d2l's ``model.predict`` always takes the most likely next character (greedy decoding). A deterministic
rule applied to a state that comes back to where it was gives the same characters again, which is why
greedy text so often loops ("the the the"). Sampling draws the next character from the model's
distribution instead: ``temperature`` rescales the logits (below 1 sharper, above 1 flatter, 0 is greedy)
and ``top_k`` keeps only the k most likely characters.

The Time Machine corpus is lower-cased by its preprocessing (d2l's ``TimeMachine``), so a prefix is
lower-cased the same way; a character that the vocabulary lacks (a digit, punctuation) is an error,
rather than d2l's silent ``<unk>``.
"""
import torch
from torch.nn import functional as F

from utils.shapes import check_sizes


def encode_prefix(prefix: str, vocab) -> list[int]:
    """The token indices of ``prefix``, lower-cased as the corpus is; unknown characters are an error."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"the prefix must be a non-empty string, got {prefix!r}")
    text = prefix.lower()
    unknown = sorted({c for c in text if c not in vocab.token_to_idx or c == "<unk>"})
    if unknown:
        raise ValueError(f"the prefix {prefix!r} has characters the vocabulary lacks: {unknown}; the corpus "
                         f"holds only {''.join(t for t in vocab.idx_to_token if len(t) == 1)!r}")
    return [vocab[c] for c in text]


def next_token(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> int:
    """One token from ``logits`` of shape ``(vocab_size,)``: the argmax when ``temperature == 0``, else a draw
    from ``softmax(logits / temperature)`` restricted to the ``top_k`` largest logits."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.double() / temperature
    if top_k is not None and top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, -torch.inf)
    return int(torch.multinomial(F.softmax(logits, dim=0), 1, generator=generator))


@torch.no_grad()
def generate(model, prefix: str, num_preds: int, vocab, *, temperature: float = 0.0, top_k: int | None = None,
             seed: int | None = None) -> str:
    """``prefix`` followed by ``num_preds`` characters from ``model`` (a d2l ``RNNLMScratch`` or ``RNNLM``).

    The prefix warms the state up; each new character is fed back as the next input. ``temperature=0``
    (the default) is greedy decoding, exactly d2l's ``predict``; otherwise characters are sampled with a
    generator seeded with ``seed`` (None: PyTorch's global generator).
    """
    check_sizes("generate", num_preds=num_preds)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature < float("inf"):
        raise ValueError(f"generate expects temperature to be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None:
        check_sizes("generate", top_k=top_k)
    tokens = encode_prefix(prefix, vocab)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    state, outputs = None, list(tokens)
    for i in range(len(tokens) + num_preds - 1):
        X = torch.tensor([[outputs[i]]], device=device)
        rnn_outputs, state = model.rnn(model.one_hot(X), state)
        if i >= len(tokens) - 1:
            logits = model.output_layer(rnn_outputs)[0, 0]  # (vocab_size,)
            outputs.append(next_token(logits, temperature, top_k, generator))
    model.train(was_training)
    return "".join(vocab.idx_to_token[i] for i in outputs)
