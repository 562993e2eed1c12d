"""Text from a trained character language model: greedy decoding, and sampling with a temperature and top-k.

d2l's ``model.predict`` always takes the most likely next character (greedy decoding). A deterministic
rule applied to a state that comes back to where it was gives the same characters again, which is why
greedy text so often loops ("the the the"). Sampling draws the next character from the model's
distribution instead: ``temperature`` rescales the logits (below 1 sharper, above 1 flatter, 0 is greedy)
and ``top_k`` keeps only the k most likely characters.

The Time Machine corpus is lower-cased by its preprocessing (d2l's ``TimeMachine``), so a prefix is
lower-cased the same way; a character that the vocabulary lacks (a digit, punctuation) is an error,
rather than d2l's silent ``<unk>``. A model whose outputs are not finite (a diverged one) is an error too,
rather than text made of whatever index NaN happens to give.
"""
import torch
from torch.nn import functional as F

from utils.shapes import check_counts, check_non_negative_numbers, check_sizes


def encode_prefix(prefix: str, vocab) -> list[int]:
    """The token indices of ``prefix``, lower-cased as the corpus is; unknown characters are an error."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"the prefix must be a non-empty string, got {prefix!r}")
    if not hasattr(vocab, "token_to_idx") or not hasattr(vocab, "idx_to_token"):
        raise TypeError(f"expected vocab to be a d2l.Vocab (with token_to_idx and idx_to_token), such as "
                        f"data.vocab, got {type(vocab).__name__}")
    text = prefix.lower()
    unknown = sorted({c for c in text if c not in vocab.token_to_idx or c == "<unk>"})
    if unknown:
        raise ValueError(f"the prefix {prefix!r} has characters the vocabulary lacks: {unknown}; the corpus "
                         f"holds only {''.join(t for t in vocab.idx_to_token if len(t) == 1)!r}")
    return [vocab[c] for c in text]


def check_sampling(name: str, temperature: float, top_k: int | None) -> None:
    """``temperature`` must be a finite number >= 0 (0 = greedy), ``top_k`` None or a positive int."""
    check_non_negative_numbers(name, temperature=temperature)
    if top_k is not None:
        check_sizes(name, top_k=top_k)


def next_token(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> int:
    """One token from ``logits`` of shape ``(vocab_size,)``: the argmax when ``temperature == 0``, else a draw
    from ``softmax(logits / temperature)`` restricted to the ``top_k`` largest logits. Logits that are not
    finite (a diverged model) are an error."""
    check_sampling("next_token", temperature, top_k)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 1 or logits.numel() == 0:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"next_token expects the logits of one step, of shape (vocab_size,), got {got}")
    if not torch.isfinite(logits).all():
        raise ValueError(f"next_token got logits that are not finite ({logits.isnan().sum().item()} NaN, "
                         f"{logits.isinf().sum().item()} inf): the model's outputs are not finite, so it diverged or "
                         "its weights are broken; retrain it (a lower lr, gradient clipping) before sampling")
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
    check_sampling("generate", temperature, top_k)
    if seed is not None:
        check_counts("generate", seed=seed)
    tokens = encode_prefix(prefix, vocab)
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if parameter is None:
        raise TypeError(f"generate expects a d2l language model with parameters, got {type(model).__name__}, "
                        "which has none")
    if parameter.is_meta:
        raise ValueError("generate got a model on the 'meta' device, whose weights hold no values: load or "
                         "initialise them on a real device first (model.to_empty(device='cpu'), then load_state_dict)")
    if model.vocab_size != len(vocab):
        raise ValueError(f"generate got a model of {model.vocab_size} tokens and a vocabulary of {len(vocab)}: "
                         "pass the vocabulary the model was trained with")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    device = parameter.device
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
