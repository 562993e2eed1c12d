"""The GRU training benchmark: tokens per second of forward + backward, as a ratio to ``nn.GRU``.

``python -m utils.bench`` (``make bench``) measures ``nn.GRU``, d2l's ``GRUScratch`` and each step of
:mod:`utils.fast_gru` at two sizes: the lecture notes' (T=35, B=32, one-hot 28, 256 hidden) and chapter
03's (T=32, B=1024, one-hot 28, 32 hidden). Every model runs in this one process; the variants take turns
within each repeat (in a rotated order), each repeat gives each variant's speed divided by ``nn.GRU``'s in
that same repeat, and the table reports medians over the repeats, after warm-up. The first call of each
variant (tracing, scripting, compiling) is timed apart and left out of the speeds. Memory is what autograd
saves for backward (the activations, measured with saved-tensor hooks; PyTorch keeps no peak-allocation
counter on the CPU).

End to end (on the CPU): one training epoch of the course's character language model (d2l's ``RNNLM`` /
``RNNLMScratch`` around ``nn.GRU``, ``GRUScratch(reset_after=True)`` and the fastest ``FastGRU``), the same
minibatches and the same loop for all, interleaved (:func:`language_model_speed`): what a user's training
actually gains.

The GEMM-only bound: every variant does the same matrix products (:func:`training_flops`), so a training step
can be no faster than those products alone. :func:`gemm_bound` times exactly those products on this machine, in
this process, and gives the GEMM-bound limit in tokens per second; the table reports each variant's share of
it. The last line printed is ``best from-scratch / nn.GRU: X.XX (spread A-B)`` for the first size.

Options: ``--quick`` (a tiny size, to check that it runs), ``--variants``, ``--threads`` (default 1: on a
machine shared with other jobs, multi-threaded kernels stall waiting for busy cores; ``default`` keeps
torch's own count) and ``--device cuda`` (where torch finds a GPU).
"""
import contextlib
import functools
import os
import sys
import statistics
import time
from dataclasses import dataclass

import d2l.torch as d2l
import pandas as pd
import torch
from torch import nn

from utils.cli import ArgumentParser
from utils.data import TimeMachine
from utils.fast_gru import STEP_DESCRIPTIONS, STEPS, FastGRU
from utils.gru import GRUScratch
from utils.language_model import language_model
from utils.mode import quick_mode
from utils.training import seed_everything

REFERENCE = "nn.GRU"
D2L = "GRUScratch"
VARIANTS = (REFERENCE, D2L) + STEPS
DESCRIPTIONS = {REFERENCE: "PyTorch's GRU (C++ loop)", D2L: "d2l's loop, 6 matmuls per step",
                **STEP_DESCRIPTIONS}


@dataclass(frozen=True)
class Size:
    """One benchmark size: ``T`` steps, batch ``B``, ``num_inputs`` (one-hot) and ``num_hiddens``."""

    name: str
    T: int
    B: int
    num_inputs: int
    num_hiddens: int

    @property
    def tokens(self) -> int:
        return self.T * self.B


LECTURE = Size("lecture", T=35, B=32, num_inputs=28, num_hiddens=256)
CHAPTER_03 = Size("chapter 03", T=32, B=1024, num_inputs=28, num_hiddens=32)
TINY = Size("tiny", T=4, B=3, num_inputs=5, num_hiddens=8)


@dataclass(frozen=True)
class Settings:
    """How long to measure: ``repeats`` rounds, each timing every variant on about ``tokens_per_round``
    tokens (at least one training step), after ``warmup`` steps."""

    sizes: tuple
    repeats: int
    tokens_per_round: int
    warmup: int

    def iters(self, size: Size) -> int:
        """Training steps per variant and round at ``size``."""
        return max(1, round(self.tokens_per_round / size.tokens))


FULL = Settings(sizes=(LECTURE, CHAPTER_03), repeats=7, tokens_per_round=8_192, warmup=2)
QUICK = Settings(sizes=(TINY,), repeats=3, tokens_per_round=2 * TINY.tokens, warmup=1)


def make_model(variant: str, num_inputs: int, num_hiddens: int) -> nn.Module:
    """A fresh model for ``variant`` (one of ``VARIANTS``); all take ``(T, B, num_inputs)`` and return
    ``(outputs, H)``."""
    if variant == REFERENCE:
        return nn.GRU(num_inputs, num_hiddens)
    if variant == D2L:
        return GRUScratch(num_inputs, num_hiddens)
    if variant in STEPS:
        return FastGRU(num_inputs, num_hiddens, variant)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def one_hot_batch(size: Size, seed: int = 0) -> torch.Tensor:
    """Random one-hot inputs of shape ``(T, B, num_inputs)``, like the Time Machine's characters."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(size.num_inputs, (size.T, size.B), generator=generator)
    return nn.functional.one_hot(tokens, size.num_inputs).float()


def train_step(model: nn.Module, inputs: torch.Tensor, grad_outputs: torch.Tensor) -> None:
    """One forward and backward pass, with ``grad_outputs`` as the gradient of the outputs."""
    for p in model.parameters():
        p.grad = None
    outputs = model(inputs)[0]
    outputs.backward(grad_outputs)


def saved_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the distinct tensors that autograd saves for backward during one forward pass."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(inputs)
    return sum(storages.values())


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the lines that the profiler's native library writes to file descriptor 2 (not Python's)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_ops(model: nn.Module, inputs: torch.Tensor, grad_outputs: torch.Tensor) -> pd.DataFrame:
    """Profile one training step with ``torch.profiler``: one row per operation (name, calls, self ms,
    share of all self time), the most expensive first."""
    with _quiet_native_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train_step(model, inputs, grad_outputs)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return pd.DataFrame([{"op": e.key.replace("autograd::engine::evaluate_function: ", "autograd: "),
                          "calls": e.count, "self ms": e.self_cpu_time_total / 1e3,
                          "share": e.self_cpu_time_total / total} for e in events])


def interleaved_seconds(calls: dict, *, repeats: int, iters: int = 1, synchronize=lambda: None) -> dict:
    """Time each of ``calls`` (name -> function of no argument) ``iters`` times in a row, taking turns in a
    rotated order, ``repeats`` rounds; return name -> list of seconds per round (one entry per round)."""
    seconds = {name: [] for name in calls}
    order = list(calls)
    for repeat in range(repeats):
        for name in order[repeat % len(order):] + order[:repeat % len(order)]:
            synchronize()
            start = time.perf_counter()
            for _ in range(iters):
                calls[name]()
            synchronize()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def training_flops(size: Size) -> dict:
    """The floating-point operations of the matrix products of one training step (forward and backward,
    inputs without gradient) of a one-layer GRU at ``size``, by product; every variant does these."""
    T, B, I, h = size.T, size.B, size.num_inputs, size.num_hiddens
    return {"input projection X W_x": 2 * T * B * I * 3 * h, "hidden products H W_h (forward)": 2 * T * B * h * 3 * h,
            "state gradients dHW W_h^T (backward)": 2 * T * B * 3 * h * h,
            "weight gradient H^T dHW": 2 * h * T * B * 3 * h, "weight gradient X^T dXW": 2 * I * T * B * 3 * h}


def gemm_bound(size: Size, *, repeats: int = 5, device="cpu") -> dict:
    """Time the matrix products of one training step at ``size`` (:func:`training_flops`, with the shapes a
    GRU uses: ``T`` per-step products forward and backward, the rest over all ``T * B`` rows at once) and
    return ``flops``, ``seconds`` (their median total), ``gflops`` (throughput) and ``tokens_per_second``:
    the GEMM-bound limit of a training step on this machine."""
    T, B, I, h = size.T, size.B, size.num_inputs, size.num_hiddens
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g).to(device)
    H, W, dHW, W_T, X, Hs, dAll, W_x = r(B, h), r(h, 3 * h), r(B, 3 * h), r(3 * h, h), r(T * B, I), r(T * B, h), \
        r(T * B, 3 * h), r(I, 3 * h)
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None

    def products():
        torch.mm(X, W_x)
        for _ in range(T):
            torch.mm(H, W)
        for _ in range(T):
            torch.mm(dHW, W_T)
        torch.mm(Hs.T, dAll)
        torch.mm(X.T, dAll)

    products()
    seconds = statistics.median(interleaved_seconds({"gemm": products}, repeats=repeats, synchronize=synchronize)["gemm"])
    flops = sum(training_flops(size).values())
    return {"flops": flops, "seconds": seconds, "gflops": flops / seconds / 1e9, "tokens_per_second": size.tokens / seconds}


def bench_device(name) -> torch.device:
    """The device ``name`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``) if the benchmark can run there; else a ValueError."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"expected the device cpu or cuda, got {str(name)!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r}: torch finds no CUDA GPU on this machine "
                         "(torch.cuda.is_available() is False); run on cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         "numbered from 0")
    return device


def measure(size: Size, variants=VARIANTS, *, repeats: int, iters: int, warmup: int, seed: int = 0,
            device="cpu"):
    """Benchmark ``variants`` at ``size`` on ``device``; return a DataFrame with one row per variant:
    tokens/s and its ratio to nn.GRU (medians over ``repeats``, with the ratio's spread), its share of the
    GEMM-bound limit (:func:`gemm_bound`), KB saved for backward, and the first call's seconds."""
    if REFERENCE not in variants:
        raise ValueError(f"the variants must include the reference {REFERENCE!r}, got {tuple(variants)}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or repeats < 1 or iters < 1 or warmup < 0:
        raise ValueError(f"expected variants from {VARIANTS}, repeats >= 1, iters >= 1, warmup >= 0; got "
                         f"unknown variants {unknown}, repeats={repeats}, iters={iters}, warmup={warmup}")
    device = bench_device(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    seed_everything(seed)
    inputs = one_hot_batch(size, seed).to(device)
    grad_outputs = torch.randn(size.T, size.B, size.num_hiddens).to(device)
    models = {v: make_model(v, size.num_inputs, size.num_hiddens).to(device) for v in variants}
    first_call, saved = {}, {}
    for variant, model in models.items():
        start = time.perf_counter()
        train_step(model, inputs, grad_outputs)
        synchronize()
        first_call[variant] = time.perf_counter() - start
        for _ in range(warmup):
            train_step(model, inputs, grad_outputs)
        saved[variant] = saved_bytes(model, inputs)
    bound = gemm_bound(size, device=device)
    seconds = interleaved_seconds({v: functools.partial(train_step, models[v], inputs, grad_outputs)
                                   for v in variants}, repeats=repeats, iters=iters, synchronize=synchronize)
    speeds = {v: [iters * size.tokens / s for s in seconds[v]] for v in variants}
    ratios = {v: [ref / s for ref, s in zip(seconds[REFERENCE], seconds[v])] for v in variants}
    return pd.DataFrame([{
        "size": size.name, "variant": v, "step": DESCRIPTIONS[v],
        "tokens/s": statistics.median(speeds[v]), "x nn.GRU": statistics.median(ratios[v]),
        "x min": min(ratios[v]), "x max": max(ratios[v]),
        "of GEMM bound": statistics.median(speeds[v]) / bound["tokens_per_second"],
        "saved KB": saved[v] / 1024, "first call s": first_call[v],
        "GEMM bound tokens/s": bound["tokens_per_second"], "GEMM GFLOP/s": bound["gflops"],
        "GFLOP per step": bound["flops"] / 1e9} for v in variants])


def run(settings: Settings, variants=VARIANTS, device="cpu") -> pd.DataFrame:
    """:func:`measure` at every size of ``settings``; one table."""
    return pd.concat([measure(size, variants, repeats=settings.repeats, iters=settings.iters(size),
                              warmup=settings.warmup, device=device) for size in settings.sizes],
                     ignore_index=True)


def best_ratio(table: pd.DataFrame) -> tuple[str, float]:
    """The fastest from-scratch variant at the table's first size and its speed ratio to nn.GRU."""
    first = table[(table["size"] == table["size"].iloc[0]) & (table["variant"] != REFERENCE)]
    if first.empty:
        raise ValueError(f"the table has no from-scratch variant, only {REFERENCE}")
    row = first.loc[first["x nn.GRU"].idxmax()]
    return row["variant"], float(row["x nn.GRU"])


LM_MODELS = {  # name -> (make_rnn(vocab_size, num_hiddens, fast_step)): the models of the end-to-end measurement
    "nn.GRU (d2l.GRU in d2l.RNNLM)": lambda v, h, step: d2l.GRU(v, h, num_layers=1),
    "GRUScratch(reset_after=True)": lambda v, h, step: GRUScratch(v, h, reset_after=True),
    "FastGRU": lambda v, h, step: FastGRU.from_scratch(GRUScratch(v, h, reset_after=True), step)}
LM_SIZES = ((CHAPTER_03, 10_240), (LECTURE, 2_048))  # (size, training windows per epoch)
LM_QUICK = ((Size("tiny", T=8, B=16, num_inputs=28, num_hiddens=8), 64),)


def language_model_epoch(model, optimizer, minibatches, clip: float = 1.0) -> None:
    """One epoch of the course's language-model training: for each ``(X, Y)`` of token ids ``(B, T)``, the
    cross-entropy of the next character, backward, gradient clipping at ``clip``, one SGD step."""
    for X, Y in minibatches:
        loss = model.loss(model(X), Y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()


def language_model_speed(size: Size, windows: int, *, repeats: int, fast_step: str = "backward_compile",
                         lr: float = 4.0, seed: int = 0) -> pd.DataFrame:
    """Seconds per training epoch of d2l language models around each layer of :data:`LM_MODELS`, end to end:
    the same Time Machine minibatches (``windows`` windows of ``size.T`` characters in batches of ``size.B``,
    ``size.num_hiddens`` units), the same loop (:func:`language_model_epoch`), one warm-up epoch each (where
    ``torch.compile`` compiles), then ``repeats`` rounds in which the models take turns in a rotated order.
    One row per model: the median seconds per epoch, and the median and range over the rounds of nn.GRU's
    epoch time divided by the model's in the same round (above 1: faster than nn.GRU)."""
    if repeats < 1 or windows < size.B:
        raise ValueError(f"expected repeats >= 1 and at least one minibatch of windows (windows >= B={size.B}), "
                         f"got repeats={repeats}, windows={windows}")
    data = TimeMachine(batch_size=size.B, num_steps=size.T, num_train=windows, num_val=0)
    minibatches = list(data.train_dataloader())
    vocab_size = len(data.vocab)
    epochs = {}
    for name, make in LM_MODELS.items():
        seed_everything(seed)
        model = language_model(make(vocab_size, size.num_hiddens, fast_step), vocab_size, lr)
        model(minibatches[0][0])  # d2l.RNNLM's output layer is lazy: create its weights before the optimizer
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        language_model_epoch(model, optimizer, minibatches)  # warm-up (and compiling)
        epochs[name] = functools.partial(language_model_epoch, model, optimizer, minibatches)
    seconds = interleaved_seconds(epochs, repeats=repeats)
    reference = seconds[next(iter(LM_MODELS))]
    tokens = sum(Y.numel() for _, Y in minibatches)
    rows = []
    for name, times in seconds.items():
        ratios = [ref / s for ref, s in zip(reference, times)]
        rows.append({"size": size.name, "model": name if name != "FastGRU" else f"FastGRU(step={fast_step!r})",
                     "s per epoch": statistics.median(times), "tokens/s": tokens / statistics.median(times),
                     "x nn.GRU": statistics.median(ratios), "x min": min(ratios), "x max": max(ratios)})
    return pd.DataFrame(rows)


def format_language_model_speed(table: pd.DataFrame) -> str:
    """The end-to-end table as text."""
    return table.to_string(index=False, formatters={
        "s per epoch": "{:.3f}".format, "tokens/s": "{:,.0f}".format, "x nn.GRU": "{:.2f}".format,
        "x min": "{:.2f}".format, "x max": "{:.2f}".format})


TABLE_COLUMNS = ["size", "variant", "step", "tokens/s", "x nn.GRU", "x min", "x max", "of GEMM bound", "saved KB",
                 "first call s"]


def format_table(table: pd.DataFrame) -> str:
    """The table as text: speeds, ratios with their spread, the share of the GEMM bound, memory."""
    return table[TABLE_COLUMNS].to_string(index=False, formatters={
        "tokens/s": "{:,.0f}".format, "x nn.GRU": "{:.2f}".format, "x min": "{:.2f}".format,
        "x max": "{:.2f}".format, "of GEMM bound": "{:.0%}".format, "saved KB": "{:,.0f}".format,
        "first call s": "{:.2f}".format})


def format_roofline(table: pd.DataFrame) -> str:
    """One line per size: the matrix products' FLOPs, their measured throughput and the GEMM-bound limit."""
    lines = []
    for size, rows in table.groupby("size", sort=False):
        row, reference = rows.iloc[0], rows[rows["variant"] == REFERENCE].iloc[0]
        lines.append(f"{size}: {row['GFLOP per step']:.3f} GFLOP of matrix products per training step, "
                     f"{row['GEMM GFLOP/s']:.0f} GFLOP/s measured for them here: GEMM-bound limit "
                     f"{row['GEMM bound tokens/s']:,.0f} tokens/s = "
                     f"{row['GEMM bound tokens/s'] / reference['tokens/s']:.2f}x nn.GRU")
    return "\n".join(lines)


def main(argv=None) -> pd.DataFrame:
    parser = ArgumentParser(prog="python -m utils.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny size, few repeats (also when GRU_COURSE_QUICK=1): checks that it runs")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, metavar="NAME",
                        help=f"which to measure (nn.GRU always included); default: all of {', '.join(VARIANTS)}")
    parser.add_argument("--threads", default="1",
                        help="CPU threads, or 'default' for torch's own count (default 1: on a shared machine, "
                             "parallel kernels wait for busy cores)")
    parser.add_argument("--device", default="cpu", help="cpu (default), or cuda where torch finds a GPU")
    args = parser.parse_args(argv)
    threads_before = torch.get_num_threads()
    threads = threads_before if args.threads == "default" else int(args.threads) if args.threads.isdigit() else 0
    if threads < 1:
        parser.error(f"--threads must be a positive int or 'default', got {args.threads!r}")
    try:
        device = bench_device(args.device)
    except ValueError as err:
        parser.error(f"--device: {err}")
    settings = QUICK if args.quick or quick_mode() else FULL
    variants = [REFERENCE] + [v for v in args.variants if v != REFERENCE]
    torch.set_num_threads(threads)
    try:
        print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} CPU thread(s); "
              f"{settings.repeats} repeats of about {settings.tokens_per_round:,} tokens per variant after "
              f"{settings.warmup} warm-up steps")
        table = run(settings, variants, device)
    finally:
        torch.set_num_threads(threads_before)
    print(format_table(table))
    print(format_roofline(table))
    if device.type == "cpu":
        quick = settings is QUICK
        print("end to end: one training epoch of the course's language model (the same minibatches and loop), "
              f"{settings.repeats} interleaved repeats after a warm-up epoch")
        torch.set_num_threads(threads)
        try:
            end_to_end = pd.concat([language_model_speed(size, windows, repeats=settings.repeats,
                                                         fast_step="backward" if quick else "backward_compile")
                                    for size, windows in (LM_QUICK if quick else LM_SIZES)], ignore_index=True)
        finally:
            torch.set_num_threads(threads_before)
        print(format_language_model_speed(end_to_end))
    best, ratio = best_ratio(table)
    row = table[(table["size"] == table["size"].iloc[0]) & (table["variant"] == best)].iloc[0]
    print(f"best from-scratch / nn.GRU: {ratio:.2f} (spread {row['x min']:.2f}-{row['x max']:.2f}, {best}, "
          f"{threads} thread(s))")
    return table


if __name__ == "__main__":
    main()
