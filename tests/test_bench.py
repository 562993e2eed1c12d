"""The benchmark at a tiny size: it runs, prints its table and, last, the `best` line."""
import re

import pandas as pd
import pytest
import torch

from utils import bench

# torch.compile is left out here (its first call takes long); tests/test_fast_gru.py checks it.
VARIANTS = ["nn.GRU", "GRUScratch", "indexed", "hoisted", "reset_after", "jit", "backward"]


def test_main_prints_the_table_and_ends_with_the_best_line(capsys):
    table = bench.main(["--quick", "--variants", *VARIANTS[1:]])  # nn.GRU is added by main
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"best from-scratch / nn\.GRU: \d+\.\d\d \(spread \d+\.\d\d-\d+\.\d\d, \w+, 1 thread\(s\)\)",
                        lines[-1]), lines[-1]
    bound = [line for line in lines if line.startswith("tiny: ")]
    assert len(bound) == 1 and re.fullmatch(r"tiny: \d\.\d{3} GFLOP of matrix products per training step, \d+ GFLOP/s "
                                            r"measured for them here: GEMM-bound limit [\d,]+ tokens/s = \d+\.\d\dx "
                                            r"nn\.GRU", bound[0]), bound
    end_to_end = lines.index(next(line for line in lines if line.startswith("end to end: one training epoch")))
    assert [line.split()[1] for line in lines[end_to_end + 2:end_to_end + 5]] == ["nn.GRU", "GRUScratch(reset_after=True)",
                                                                               "FastGRU(step='backward')"]
    assert list(table["variant"]) == VARIANTS and set(table["size"]) == {bench.TINY.name}
    for variant in VARIANTS:
        assert any(line.split()[:2] == [bench.TINY.name, variant] for line in lines), variant
    assert (table.loc[table["variant"] == "nn.GRU", "x nn.GRU"] == 1.0).all()  # a ratio to itself
    assert (table["tokens/s"] > 0).all() and (table["saved KB"] > 0).all() and (table["first call s"] > 0).all()
    best, ratio = bench.best_ratio(table)
    assert best != "nn.GRU" and lines[-1].split(": ")[1].startswith(f"{ratio:.2f} (spread")
    assert (table["x min"] <= table["x nn.GRU"]).all() and (table["x nn.GRU"] <= table["x max"]).all()
    assert ((table["of GEMM bound"] > 0) & (table["of GEMM bound"] < 2)).all()


def test_training_flops_count_the_products_of_a_step():
    size = bench.Size("s", T=2, B=3, num_inputs=4, num_hiddens=5)
    flops = bench.training_flops(size)
    assert flops["hidden products H W_h (forward)"] == 2 * 2 * 3 * 5 * 15 and flops["input projection X W_x"] == 2 * 6 * 4 * 15
    assert sum(flops.values()) == 2 * 6 * 15 * (4 + 5 + 5 + 5 + 4)
    bound = bench.gemm_bound(size, repeats=2)
    assert bound["flops"] == sum(flops.values()) and bound["tokens_per_second"] == size.tokens / bound["seconds"]


def test_best_ratio_is_the_fastest_from_scratch_variant_of_the_first_size():
    table = pd.DataFrame({"size": ["a", "a", "a", "b"], "variant": ["nn.GRU", "jit", "hoisted", "hoisted"],
                          "x nn.GRU": [1.0, 0.9, 0.7, 5.0]})
    assert bench.best_ratio(table) == ("jit", 0.9)
    with pytest.raises(ValueError, match="no from-scratch variant"):
        bench.best_ratio(table[table["variant"] == "nn.GRU"])


def test_saved_bytes_counts_what_autograd_keeps():
    size = bench.TINY
    inputs = bench.one_hot_batch(size)
    assert inputs.shape == (size.T, size.B, size.num_inputs) and (inputs.sum(-1) == 1).all()
    model = bench.make_model("hoisted", size.num_inputs, size.num_hiddens)
    assert bench.saved_bytes(model, inputs) >= size.T * size.B * size.num_hiddens * 4  # at least the states


@pytest.mark.parametrize("call, match", [
    (lambda: bench.measure(bench.TINY, ["hoisted"], repeats=1, iters=1, warmup=0), "must include the reference"),
    (lambda: bench.measure(bench.TINY, ["nn.GRU", "lstm"], repeats=1, iters=1, warmup=0), r"\['lstm'\]"),
    (lambda: bench.measure(bench.TINY, ["nn.GRU"], repeats=0, iters=1, warmup=0), "repeats=0"),
    (lambda: bench.make_model("lstm", 3, 4), "unknown variant 'lstm'"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_language_model_speed_times_every_model_on_the_same_minibatches():
    size, windows = bench.LM_QUICK[0]
    table = bench.language_model_speed(size, windows, repeats=2, fast_step="backward")
    assert list(table["model"]) == ["nn.GRU (d2l.GRU in d2l.RNNLM)", "GRUScratch(reset_after=True)",
                                    "FastGRU(step='backward')"]
    reference = table.iloc[0]
    assert (reference["x nn.GRU"], reference["x min"], reference["x max"]) == (1.0, 1.0, 1.0)  # a ratio to itself
    assert (table["s per epoch"] > 0).all() and (table["x min"] <= table["x nn.GRU"]).all()
    assert (table["x nn.GRU"] <= table["x max"]).all()
    tokens = table["tokens/s"] * table["s per epoch"]
    assert tokens.round().nunique() == 1 and tokens.iloc[0] == pytest.approx(windows // size.B * size.B * size.T)
    with pytest.raises(ValueError, match="windows >= B=16"):
        bench.language_model_speed(size, 8, repeats=1)


def test_the_language_model_epoch_trains():
    size, windows = bench.LM_QUICK[0]
    from utils.data import TimeMachine
    from utils.language_model import language_model
    data = TimeMachine(batch_size=size.B, num_steps=size.T, num_train=windows, num_val=0)
    minibatches = list(data.train_dataloader())
    model = language_model(bench.GRUScratch(len(data.vocab), 8), len(data.vocab), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    loss = lambda: sum(model.loss(model(X), Y).item() for X, Y in minibatches)  # noqa: E731
    start = loss()
    for _ in range(5):
        bench.language_model_epoch(model, torch.optim.SGD(model.parameters(), lr=1.0), minibatches)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters())) and loss() < start
