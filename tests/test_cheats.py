"""The ways round the checks that once worked, each family on every exercise where it applies: every one must
now score zero (the check prints one line ``✗ ...`` and raises). Where a cheat computes the right values when no
check runs, a test says so first: it is a real cheat, stopped by the check alone."""
import ctypes
import gc
import importlib
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import d2l.torch as d2l
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import utils.antisymmetric
import utils.gru
from test_checks import CORRECT, VARIATIONS, fails, gru_step, step_gradients
from utils import checks
from utils.answer_guard import course_file
from utils.blog_cells import ConcatGRUCell
from utils.checks import GRADIENT_NAMES, check
from utils.classifier import GRUClassifier
from utils.fast_gru import hand_forward_loop, reset_before_loop
from utils.gru import GRUScratch
from utils.gru_backward import step_backward, step_forward
from utils.ideal_gates import ideal_gate_schedule
from utils.lstm import LSTM, LSTMScratch
from utils.paths import repo_root
from utils.training import perplexity

STEPS = {"gru_step": ("z", "r"), "reset_only_step": ("r",), "update_only_step": ("z",)}


def shaped(name, reply):
    """``reply`` as the answer of the check ``name``: for the classifier, a model whose forward is ``reply(X)``."""
    if name != "gru_classifier":
        return reply

    class Model(nn.Module):
        def __init__(self, cell, num_classes):
            super().__init__()
            self.cell, self.head = cell, nn.Linear(cell.hidden_size, num_classes)

        def forward(self, X):
            return reply(X)
    return Model


def step_args(name, seed=0):
    """Arguments like those of the check ``name`` (a GRU step), at its default sizes."""
    generator = torch.Generator().manual_seed(seed)
    p = checks._gru_params(generator, 3, 4, STEPS[name])
    return types.SimpleNamespace(**p), checks._random(generator, 5, 3), checks._random(generator, 5, 4)


def fused_args(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (checks._random(generator, 5, 12), checks._random(generator, 5, 4), checks._random(generator, 4, 12),
            checks._random(generator, 4))


def backward_args(seed=0):
    generator = torch.Generator().manual_seed(seed)
    p = checks._gru_params(generator, 3, 4, ("z", "r"))
    X, H, dH_new = (checks._random(generator, 5, n) for n in (3, 4, 4))
    *_, Z, R, RH, H_tilde, H_new = checks._step(p, X, H)
    return p, {"X": X, "H": H, "Z": Z, "R": R, "H_tilde": H_tilde, "RH": RH, "H_new": H_new}, dH_new


def assert_right_when_unchecked(name, cheat):
    """The cheat gives the right values for exercise ``name`` when no check runs."""
    args = {"fused_reset_after_step": fused_args, "gru_step_backward": backward_args, **NEW_ARGS}.get(
        name, lambda: step_args(name))()
    with torch.no_grad():
        got, want = cheat(*args), CORRECT[name](*args)
    if isinstance(want, dict):
        assert all(torch.allclose(got[key], want[key]) for key in want)
    elif isinstance(want, torch.Tensor):
        assert torch.allclose(got, want)
    elif isinstance(want, tuple):
        assert tuple(map(float, got)) == tuple(map(float, want))
    else:
        assert float(got) == pytest.approx(want)


# ---------- 1. reading the answer key: nothing to read, and gc is closed ----------

def key_from_frames(*args):
    """What the checker had computed before the answer ran, found in its frames."""
    frame = sys._getframe(1)
    while frame is not None:
        for name in ("cases", "expected"):
            value = frame.f_locals.get(name)
            if isinstance(value, dict):
                return value.get("expected", value)
            if isinstance(value, torch.Tensor):
                return value
        frame = frame.f_back
    raise LookupError("no answer key in the checker's frames")


def key_from_gc(*args):
    tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    return tensors[-1]


@pytest.mark.parametrize("name", [name for name in CORRECT if name != "ideal_gate_schedule"])
def test_the_checkers_frames_hold_no_answer_key(capsys, name):
    fails(capsys, name, shaped(name, key_from_frames), "LookupError: no answer key")


@pytest.mark.parametrize("name", CORRECT)
def test_gc_cannot_list_the_checkers_objects(capsys, name):
    fails(capsys, name, shaped(name, key_from_gc), "your code used gc.get_objects")


# ---------- 2. a tensor that lies ----------

class Liar(torch.Tensor):
    """Says yes to every comparison."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs)


def lie(like):
    return torch.zeros_like(like).as_subclass(Liar)


LIARS = {**{name: lambda gru, X, H: lie(H) for name in STEPS},
         "ideal_gate_schedule": lambda T, t: (lie(torch.zeros(T, 1, 1)), lie(torch.zeros(T, 1, 1))),
         "gated_antisymmetric_step": lambda cell, x, h: lie(h),
         "gru_step_backward": lambda p, cache, dH_new: {name: lie(dH_new) for name in GRADIENT_NAMES},
         "fused_reset_after_step": lambda XW, H, W_h, b_hh: lie(H),
         "gru_classifier": shaped("gru_classifier", lambda X: lie(torch.zeros(X.shape[0], 7))),
         "hand_set_gates": lambda actions, h: (lie(torch.zeros(len(actions), h)), lie(torch.zeros(len(actions), h))),
         "reset_after_gru_step": lambda gru, X, H: lie(H),
         "unpack_gru_weights": lambda gru: {name: lie(torch.zeros(1)) for name in checks.UNPACKED_NAMES},
         "text_perplexity": lambda losses, counts: lie(torch.zeros(())),
         "parameter_budget": lambda kind, d, h: (lie(torch.zeros((), dtype=torch.int64)),
                                                 lie(torch.zeros((), dtype=torch.int64)))}


def test_a_liar_fools_torch_allclose():
    assert torch.allclose(lie(torch.ones(2)), torch.ones(2))


@pytest.mark.parametrize("name", LIARS)
def test_a_tensor_subclass_is_refused(capsys, name):
    fails(capsys, name, LIARS[name], "a subclass of torch.Tensor: return plain tensors")


# ---------- 3. the course's own code, by any route ----------

REFERENCE = GRUScratch(3, 4).double()  # built before the check: only running the course's code is refused
SAVED_STEP = GRUScratch.step
COPIED_STEP = types.FunctionType(SAVED_STEP.__code__, SAVED_STEP.__globals__, "step", SAVED_STEP.__defaults__,
                                 SAVED_STEP.__closure__)
COPIED_STEP.__kwdefaults__ = SAVED_STEP.__kwdefaults__
EXECUTED = {}
exec(compile(Path(utils.gru.__file__).read_text(), "<string>", "exec"), EXECUTED)  # the file's text, run now
EXECUTED_REFERENCE = EXECUTED["GRUScratch"](3, 4).double()


def with_reference(step, reference=REFERENCE):
    """A step answer that loads the given weights into ``reference`` and runs ``step`` on it."""
    def answer(gru, X, H):
        for name, value in vars(gru).items():
            getattr(reference, name).data = value
        return step(reference, X, H).H
    return answer


def fresh_import(gru, X, H):
    spec = importlib.util.spec_from_file_location("gru_again", utils.gru.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return with_reference(module.GRUScratch.step)(gru, X, H)


def reloaded(gru, X, H):
    return with_reference(importlib.reload(utils.gru).GRUScratch.step)(gru, X, H)


def executed_inside(gru, X, H):
    namespace = {}
    exec(open(utils.gru.__file__).read(), namespace)
    return with_reference(namespace["GRUScratch"].step, namespace["GRUScratch"](3, 4).double())(gru, X, H)


ROUTES = {"a reference saved before the check": (with_reference(SAVED_STEP), "ran GRUScratch.step from the course's "
                                                                              "code (utils/gru.py)"),
          "a copy of its function": (with_reference(COPIED_STEP), "ran GRUScratch.step from the course's code"),
          "a fresh import from its file": (fresh_import, "opened the course's code (utils/"),
          "importlib.reload": (reloaded, "opened the course's code (utils/"),
          "exec of its file's text, inside the answer": (executed_inside, "opened the course's code (utils/gru.py)"),
          "exec of its file's text, before the check": (with_reference(EXECUTED["GRUScratch"].step, EXECUTED_REFERENCE),
                                                        "ran a copy of the course's utils/gru.py (GRUScratch.step)")}


def test_the_routes_run_the_course_step_when_unchecked():
    for answer in (with_reference(SAVED_STEP), with_reference(COPIED_STEP), fresh_import, executed_inside,
                   ROUTES["exec of its file's text, before the check"][0]):
        assert_right_when_unchecked("gru_step", answer)


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_to_the_course_step_is_refused(capsys, route):
    answer, fragment = ROUTES[route]
    fails(capsys, "gru_step", answer, fragment)
    assert utils.gru.GRUScratch is GRUScratch  # a refused reload changed nothing


def test_a_decoy_module_changes_nothing(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "utils.gru", types.ModuleType("utils.gru"))
    fails(capsys, "gru_step", with_reference(SAVED_STEP), "ran GRUScratch.step from the course's code")


ANTISYMMETRIC = utils.antisymmetric.GatedAntisymmetricRNN(3, 4, epsilon=0.3, gamma=0.2).double()
SAVED_ANTISYMMETRIC_STEP = utils.antisymmetric.GatedAntisymmetricRNN.step
SAVED_SCHEDULE, SAVED_BACKWARD = ideal_gate_schedule, step_backward


def antisymmetric_by_the_course(cell, x, h):
    for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"):
        getattr(ANTISYMMETRIC, name).data = getattr(cell, name)
    return SAVED_ANTISYMMETRIC_STEP(ANTISYMMETRIC, x, h)


class CourseClassifier(GRUClassifier):
    forward, states = GRUClassifier.forward, GRUClassifier.states


class OwnInitCourseForward(nn.Module):
    def __init__(self, cell, num_classes):
        super().__init__()
        self.cell, self.head = cell, nn.Linear(cell.hidden_size, num_classes)

    forward, states = GRUClassifier.forward, GRUClassifier.states


COURSE = [("reset_only_step", with_reference(SAVED_STEP, GRUScratch(3, 4, update_gate=False).double()),
           "GRUScratch.step"),
          ("update_only_step", with_reference(SAVED_STEP, GRUScratch(3, 4, reset_gate=False).double()),
           "GRUScratch.step"),
          ("ideal_gate_schedule", lambda T, t: tuple(SAVED_SCHEDULE(T, t)[:2]), "ideal_gate_schedule"),
          ("gated_antisymmetric_step", antisymmetric_by_the_course, "GatedAntisymmetricRNN.step"),
          ("gru_step_backward", lambda p, cache, dH_new: SAVED_BACKWARD(p, cache, dH_new, reset_after=False),
           "step_backward"),
          ("gru_classifier", CourseClassifier, "GRUClassifier.__init__"),
          ("gru_classifier", OwnInitCourseForward, "GRUClassifier.forward")]


@pytest.mark.parametrize("name, answer, function", COURSE, ids=[f"{n}-{f}" for n, _, f in COURSE])
def test_every_exercise_refuses_the_course_implementation(capsys, name, answer, function):
    fails(capsys, name, answer, f"ran {function} from the course's code (utils/")


# ---------- 4. the course's helpers, and the checker's own formulas ----------

def via_step_forward(gru, X, H):
    return step_forward(vars(gru), X, H, reset_after=False)["H_new"]


def via_reset_before_loop(gru, X, H):
    XW = torch.cat([X @ gru.W_xz + gru.b_z, X @ gru.W_xr + gru.b_r, X @ gru.W_xh + gru.b_h], dim=1)
    W_h = torch.cat([gru.W_hz, gru.W_hr, gru.W_hh], dim=1)
    return reset_before_loop(XW[None], H, W_h, unbind=True, fuse_gates=False)[1]


def via_concat_cell(gru, X, H):
    for name, value in vars(gru).items():
        getattr(REFERENCE, name).data = value
    return ConcatGRUCell.from_scratch(REFERENCE)(X, H)


def via_hand_forward_loop(XW, H, W_h, b_hh):
    return hand_forward_loop(XW[None], H, W_h, b_hh)[0][0]


def via_the_checker(gates):
    return lambda gru, X, H: checks._gru_new_state(vars(gru), X, H, gates)


def saturated(gate, bias):
    """A full GRU step (the checker's formula) with ``gate`` pinned by a huge bias: the one-gate step."""
    def answer(gru, X, H):
        p = {**vars(gru), f"W_x{gate}": torch.zeros_like(gru.W_xh), f"W_h{gate}": torch.zeros_like(gru.W_hh),
             f"b_{gate}": torch.full_like(gru.b_h, bias)}
        return checks._gru_new_state(p, X, H, ("z", "r"))
    return answer


def saturated_course_step(gate, bias):
    def answer(gru, X, H):
        p = {**{name: getattr(REFERENCE, name).data for name in ("W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r")},
             **vars(gru), f"W_x{gate}": torch.zeros_like(gru.W_xh), f"W_h{gate}": torch.zeros_like(gru.W_hh),
             f"b_{gate}": torch.full_like(gru.b_h, bias)}
        return with_reference(SAVED_STEP)(types.SimpleNamespace(**p), X, H)
    return answer


HELPERS = [("gru_step", via_step_forward, "step_forward"), ("gru_step", via_reset_before_loop, "reset_before_loop"),
           ("gru_step", via_concat_cell, "ConcatGRUCell.from_scratch"),
           ("fused_reset_after_step", via_hand_forward_loop, "hand_forward_loop"),
           *((name, via_the_checker(gates), "_gru_new_state") for name, gates in STEPS.items()),
           ("update_only_step", saturated("r", 1e4), "_gru_new_state"),
           ("reset_only_step", saturated("z", -1e4), "_gru_new_state"),
           ("update_only_step", saturated_course_step("r", 1e4), "GRUScratch.step"),
           ("reset_only_step", saturated_course_step("z", -1e4), "GRUScratch.step")]


# ---------- 5. torch doing the exercise ----------

def gru_cell_weights(gru):
    """torch's GRU cell weights (rows r, z, n) of an update-only step: a huge bias keeps the reset gate at 1."""
    w_ih = torch.cat([torch.zeros_like(gru.W_xz), gru.W_xz, gru.W_xh], dim=1).T
    w_hh = torch.cat([torch.zeros_like(gru.W_hz), gru.W_hz, gru.W_hh], dim=1).T
    b_ih = torch.cat([torch.full_like(gru.b_z, 1e4), gru.b_z, gru.b_h])
    return w_ih, w_hh, b_ih, torch.zeros_like(b_ih)


def torch_layer(kind):
    def answer(gru, X, H):
        w_ih, w_hh, b_ih, b_hh = gru_cell_weights(gru)
        layer = kind(X.shape[1], H.shape[1]).double()
        suffix = "_l0" if kind is nn.GRU else ""
        with torch.no_grad():
            for name, value in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih), ("bias_hh", b_hh)):
                getattr(layer, name + suffix).copy_(value)
        return layer(X, H) if kind is nn.GRUCell else layer(X[None], H[None])[0][0]
    return answer


def gru_cell_fused(XW, H, W_h, b_hh):
    """Chapter 11's step by torch.gru_cell (the columns reordered to its [r | z | n]), with one visible product."""
    h = H.shape[1]
    order = torch.cat([torch.arange(h, 2 * h), torch.arange(h), torch.arange(2 * h, 3 * h)])
    H @ W_h  # the one product the old count saw
    return torch.gru_cell(XW[:, order], H, torch.eye(3 * h, dtype=H.dtype), W_h[:, order].T, None,
                          torch.cat([torch.zeros(2 * h, dtype=H.dtype), b_hh]))


TORCH = [("update_only_step", lambda gru, X, H: torch.gru_cell(X, H, *gru_cell_weights(gru)), "torch.gru_cell"),
         ("update_only_step", lambda gru, X, H: torch._VF.gru_cell(X, H, *gru_cell_weights(gru)), "torch._VF.gru_cell"),
         ("update_only_step", torch_layer(nn.GRUCell), "nn.GRUCell"),
         ("update_only_step", torch_layer(nn.GRU), "nn.GRU"),
         ("fused_reset_after_step", gru_cell_fused, "torch.gru_cell")]


@pytest.mark.parametrize("name, answer, how", TORCH, ids=[f"{n}-{h}" for n, _, h in TORCH])
def test_torchs_recurrent_layers_give_the_right_values_when_unchecked(name, answer, how):
    assert_right_when_unchecked(name, answer)


@pytest.mark.parametrize("name, answer, how", TORCH, ids=[f"{n}-{h}" for n, _, h in TORCH])
def test_torchs_recurrent_layers_are_refused(capsys, name, answer, how):
    fails(capsys, name, answer, "your code used torch's recurrent layers")


def forward_of(p, X, H):
    """The step, written by the cheat, for autograd to differentiate."""
    Z = torch.sigmoid(X @ p["W_xz"] + H @ p["W_hz"] + p["b_z"])
    R = torch.sigmoid(X @ p["W_xr"] + H @ p["W_hr"] + p["b_r"])
    return Z * H + (1 - Z) * torch.tanh(X @ p["W_xh"] + (R * H) @ p["W_hh"] + p["b_h"])


def leaf_gradients(differentiate):
    """The gradients of the step's leaves by ``differentiate(inputs, dH_new)``; the others by hand."""
    def answer(p, cache, dH_new):
        g = step_gradients(p, cache, dH_new)
        g.update(differentiate({**p, "X": cache["X"], "H": cache["H"]}, dH_new))
        return g
    return answer


def by_autograd_grad(inputs, dH_new):
    with torch.enable_grad():
        leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
        grads = torch.autograd.grad(forward_of(leaves, leaves["X"], leaves["H"]), list(leaves.values()), dH_new)
    return {f"d{k}": g for k, g in zip(leaves, grads)}


def by_backward(inputs, dH_new):
    with torch.enable_grad():
        leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
        forward_of(leaves, leaves["X"], leaves["H"]).backward(dH_new)
    return {f"d{k}": v.grad for k, v in leaves.items()}


def by_vjp(inputs, dH_new):
    _, pullback = torch.func.vjp(lambda leaves: forward_of(leaves, leaves["X"], leaves["H"]), inputs)
    return {f"d{k}": g for k, g in pullback(dH_new)[0].items()}


def by_functional_vjp(inputs, dH_new):
    names = list(inputs)
    _, grads = torch.autograd.functional.vjp(lambda *values: forward_of(dict(zip(names, values)), values[-2],
                                                                        values[-1]), tuple(inputs.values()), dH_new)
    return {f"d{k}": g for k, g in zip(names, grads)}


def by_func_grad(inputs, dH_new):
    grads = torch.func.grad(lambda leaves: (forward_of(leaves, leaves["X"], leaves["H"]) * dH_new).sum())(inputs)
    return {f"d{k}": g for k, g in grads.items()}


AUTOGRAD = {"torch.autograd.grad": by_autograd_grad, "Tensor.backward": by_backward, "torch.func.vjp": by_vjp,
            "torch.autograd.functional.vjp": by_functional_vjp, "torch.func.grad": by_func_grad}


@pytest.mark.parametrize("how", AUTOGRAD)
def test_autograd_gives_the_right_gradients_when_unchecked(how):
    assert_right_when_unchecked("gru_step_backward", leaf_gradients(AUTOGRAD[how]))


@pytest.mark.parametrize("how", AUTOGRAD)
def test_autograd_is_refused_in_the_backward_exercise(capsys, how):
    line = fails(capsys, "gru_step_backward", leaf_gradients(AUTOGRAD[how]))
    assert "autograd" in line or "which this check does not allow" in line, line


# ---------- 6. hiding matrix products from the count (chapter 11) ----------

def products_with_overrides_off(XW, H, W_h, b_hh):
    h = H.shape[1]
    Z = torch.sigmoid(XW[:, :h] + H @ W_h[:, :h])
    with torch._C.DisableTorchFunction():
        R = torch.sigmoid(XW[:, h:2 * h] + H @ W_h[:, h:2 * h])
        N = H @ W_h[:, 2 * h:]
    return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (N + b_hh))


def products_by_linalg(XW, H, W_h, b_hh):
    h = H.shape[1]
    Z = torch.sigmoid(XW[:, :h] + torch.linalg.matmul(H, W_h[:, :h]))
    R = torch.sigmoid(XW[:, h:2 * h] + torch.linalg.matmul(H, W_h[:, h:2 * h]))
    return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (torch.linalg.matmul(H, W_h[:, 2 * h:]) + b_hh))


def products_in_numpy(XW, H, W_h, b_hh):
    h = H.shape[1]
    HW = [torch.from_numpy(H.numpy() @ W_h[:, i * h:(i + 1) * h].numpy()) for i in range(3)]
    Z, R = torch.sigmoid(XW[:, :h] + HW[0]), torch.sigmoid(XW[:, h:2 * h] + HW[1])
    return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (HW[2] + b_hh))


HIDDEN = [(products_with_overrides_off, "made 3 matrix products"), (products_by_linalg, "made 3 matrix products"),
          (products_in_numpy, "a tensor computed out of the check's sight"),
          (gru_cell_fused, "your code used torch's recurrent layers")]


@pytest.mark.parametrize("answer, fragment", HIDDEN, ids=[a.__name__ for a, _ in HIDDEN])
def test_hidden_products_are_counted_or_refused(capsys, answer, fragment):
    assert_right_when_unchecked("fused_reset_after_step", answer)
    fails(capsys, "fused_reset_after_step", answer, fragment)


# ---------- 7. the solutions on disk ----------

SOLUTIONS = {"gru_step": ("03_gru_scratch.ipynb", "gru_step"), "ideal_gate_schedule": ("05_ideal_gates.ipynb",
                                                                                     "my_gate_schedule"),
             "reset_only_step": ("08_ablations.ipynb", "reset_only_step"),
             "update_only_step": ("08_ablations.ipynb", "update_only_step"),
             "gated_antisymmetric_step": ("09_antisymmetric_rnn.ipynb", "gated_antisymmetric_step"),
             "gru_step_backward": ("10_backprop_by_hand.ipynb", "gru_step_backward"),
             "fused_reset_after_step": ("11_speed.ipynb", "fused_step"),
             "gru_classifier": ("12_beyond_text.ipynb", "MyGRUClassifier"),
             "hand_set_gates": ("01_why_gating.ipynb", "gate_weights"),
             "reset_after_gru_step": ("02_gru_gates.ipynb", "reset_after_step"),
             "unpack_gru_weights": ("04_gru_concise.ipynb", "unpack_gru_weights"),
             "text_perplexity": ("06_hyperparameters.ipynb", "text_perplexity"),
             "parameter_budget": ("07_rnn_vs_gru.ipynb", "parameter_budget")}


def solution_source(path: Path, function: str) -> str:
    cells = json.loads(path.read_text())["cells"]
    return next("".join(cell["source"]) for cell in cells if cell.get("metadata", {}).get("nbgrader", {}).get(
        "solution") and f" {function}(" in "".join(cell["source"]))


def solution_read_while_checked(path: Path, function: str):
    """An answer that reads the stored solution from ``path`` while it is checked, and runs it."""
    def answer(*args):
        namespace = {"torch": torch, "nn": nn}
        exec(solution_source(path, function), namespace)
        return namespace[function](*args)
    return answer


@pytest.mark.parametrize("name", SOLUTIONS)
def test_the_chapters_solutions_cannot_be_read_while_checked(capsys, name):
    notebook, function = SOLUTIONS[name]
    fails(capsys, name, solution_read_while_checked(repo_root() / "notebooks" / notebook, function),
          f"opened a chapter notebook with its solutions ({notebook})")


@pytest.mark.parametrize("name", SOLUTIONS)
def test_nbgraders_source_notebooks_cannot_be_read_while_checked(capsys, tmp_path, name):
    notebook, function = SOLUTIONS[name]
    source = tmp_path / "course" / "source" / f"ch{notebook[:2]}" / notebook
    source.parent.mkdir(parents=True)
    shutil.copy(repo_root() / "notebooks" / notebook, source)
    fails(capsys, name, solution_read_while_checked(source, function), "opened a chapter notebook with its solutions")


@pytest.mark.parametrize("name", SOLUTIONS)
def test_a_solution_compiled_from_its_notebook_is_refused(capsys, name):
    notebook, function = SOLUTIONS[name]
    path = repo_root() / "notebooks" / notebook
    namespace = {"torch": torch, "nn": nn}
    exec(compile(solution_source(path, function), str(path), "exec"), namespace)  # read before the check
    fails(capsys, name, namespace[function], f"from a chapter notebook with its solutions ({notebook})")


def test_what_counts_as_the_courses_files(tmp_path):
    assert course_file(utils.gru.__file__) == "the course's code (utils/gru.py)"
    assert course_file(repo_root() / "notebooks" / "03_gru_scratch.ipynb").startswith("a chapter notebook")
    assert course_file(tmp_path / "course" / "source" / "ch03" / "03_gru_scratch.ipynb").startswith("a chapter")
    for path in (repo_root() / "notebooks" / "student" / "03_gru_scratch_student.ipynb", tmp_path / "mine.py",
                 "<string>", 3):
        assert course_file(path) is None


# ---------- 8. rewriting the grader, or leaving something behind ----------

def test_pointing_the_checker_at_another_file_changes_nothing(capsys, monkeypatch, tmp_path):
    lenient = tmp_path / "checks.py"
    lenient.write_text("CHECKS = {}\ndef run_check(name, answer, variation):\n    return True, '✓ ' + name\n")
    monkeypatch.setattr(checks, "__file__", str(lenient))
    fails(capsys, "gru_step", lambda gru, X, H: H, "H_new differs")


def test_replacing_torch_allclose_changes_nothing(capsys, monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)
    fails(capsys, "gru_step", lambda gru, X, H: H, "H_new differs")


def test_a_graded_cell_without_its_assert_still_fails(capsys):
    namespace = {"check": check, "answer": lambda gru, X, H: H}
    with pytest.raises(AssertionError, match="gru_step: H_new differs"):
        exec('check("gru_step", answer)', namespace)  # what an input transformer that drops `assert` leaves
    capsys.readouterr()


def test_a_tracer_planted_before_the_check_is_refused(capsys):
    sys.settrace(lambda frame, event, arg: None)
    try:
        fails(capsys, "gru_step", gru_step, "a trace or profile function of your code is set (sys.settrace)")
    finally:
        sys.settrace(None)


def test_a_thread_planted_before_the_check_is_refused(capsys):
    release = threading.Event()
    thread = threading.Thread(target=lambda: release.wait(30))
    thread.start()
    try:
        fails(capsys, "gru_step", gru_step, "a thread of your code is running, which could watch")
    finally:
        release.set()
        thread.join()


def test_a_signal_handler_planted_before_the_check_is_refused(capsys):
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: None)
    try:
        fails(capsys, "gru_step", gru_step, "a signal handler of your code is set (SIGUSR1)")
    finally:
        signal.signal(signal.SIGUSR1, previous)


def then_correct(action):
    """An answer that does ``action()``, then answers correctly."""
    def answer(gru, X, H):
        action()
        return gru_step(gru, X, H)
    return answer


class Quiet(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class QuietDispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


ACTIONS = {"a tracer": (lambda: sys.settrace(lambda frame, event, arg: None), "called sys.settrace"),
           "a thread": (lambda: threading.Thread(target=print).start(), "called _thread.start_new_thread"),
           "a process": (lambda: subprocess.run(["cat", utils.gru.__file__], capture_output=True),
                         "your code used subprocess.Popen"),
           "ctypes": (lambda: ctypes.string_at(id(REFERENCE), 8), "your code used ctypes."),
           "other threads' frames": (sys._current_frames, "your code used sys._current_frames"),
           "the garbage collector": (gc.enable, "called gc.enable"),
           "a torch function mode": (lambda: Quiet().__enter__(), "your code left torch modes (Quiet) active"),
           "a torch dispatch mode": (lambda: QuietDispatch().__enter__(),
                                     "called torch._C._push_on_torch_dispatch_stack")}


@pytest.mark.parametrize("action", ACTIONS)
def test_what_could_watch_or_switch_off_the_checker_is_refused(capsys, action):
    do, fragment = ACTIONS[action]
    try:
        fails(capsys, "gru_step", then_correct(do), fragment)
    finally:
        sys.settrace(None)
    assert torch._C._len_torch_function_stack() == 0 and torch._C._len_torch_dispatch_stack() == 0



# ---------- 9. the exercises of chapters 01, 02, 04, 06 and 07 ----------

def reset_after_args(seed=0):
    generator = torch.Generator().manual_seed(seed)
    p = checks._gru_params(generator, 3, 4, ("z", "r"))
    p["b_hh"] = checks._random(generator, 4, scale=0.5)
    return types.SimpleNamespace(**p), checks._random(generator, 5, 3), checks._random(generator, 5, 4)


def gru_layer(seed=0, num_inputs=5, num_hiddens=4):
    torch.manual_seed(seed)
    return nn.GRU(num_inputs, num_hiddens).double()


def minibatch_losses(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return checks._minibatches(generator, 9)


NEW_ARGS = {"reset_after_gru_step": reset_after_args, "unpack_gru_weights": lambda: (gru_layer(),),
            "text_perplexity": minibatch_losses, "parameter_budget": lambda: ("GRU", 28, 32)}


# the course's implementations

REFERENCE_AFTER = GRUScratch(3, 4, reset_after=True).double()  # built before the check


def reset_after_by_the_course(gru, X, H):
    for name, value in vars(gru).items():
        getattr(REFERENCE_AFTER, name).data = value
    return SAVED_STEP(REFERENCE_AFTER, X, H).H


def reset_after_by_the_fast_loop(gru, X, H):  # utils.fast_gru's reset-after loop, columns [z | r | n]
    XW = X @ torch.cat([gru.W_xz, gru.W_xr, gru.W_xh], 1) + torch.cat([gru.b_z, gru.b_r, gru.b_h])
    return hand_forward_loop(XW[None], H, torch.cat([gru.W_hz, gru.W_hr, gru.W_hh], 1), gru.b_hh)[0][0]


SAVED_FROM_TORCH = GRUScratch.from_torch


def unpacked_by_from_torch(layer):
    model = SAVED_FROM_TORCH(layer)
    return {name: getattr(model, name).detach() for name in checks.UNPACKED_NAMES}


class StubLanguageModel:
    """Just enough of a d2l language model for utils.training.perplexity: minibatch i's tokens all cost losses[i]."""

    training = False

    def __init__(self, losses):
        self.losses = iter(losses.tolist())

    def eval(self):
        pass

    def train(self, mode=True):
        pass

    def __call__(self, X):
        return torch.zeros(X.shape[0], 1, dtype=torch.float64)

    def loss(self, outputs, Y, averaged=True):
        return torch.full((Y.shape[0],), next(self.losses), dtype=torch.float64)


def perplexity_by_the_course(losses, counts):
    batches = [(torch.zeros(int(c), dtype=torch.int64), torch.zeros(int(c), dtype=torch.int64)) for c in counts]
    return perplexity(StubLanguageModel(losses), batches)


def budget_by_the_course(kind, d, h):
    layer = {"RNN": lambda: GRUScratch(d, h, reset_gate=False, update_gate=False), "GRU": lambda: GRUScratch(d, h),
             "LSTM": lambda: LSTMScratch(d, h)}[kind]()
    count = sum(p.numel() for p in layer.parameters()) + checks.BLOCKS[kind] * h  # nn.*: one more bias per block
    return count, CORRECT["parameter_budget"](kind, d, h)[1]


def budget_by_the_course_lstm(kind, d, h):
    return sum(p.numel() for p in LSTM(d, h).parameters()), CORRECT["parameter_budget"](kind, d, h)[1]


NEW_COURSE = [("reset_after_gru_step", reset_after_by_the_course, "GRUScratch.step"),
              ("reset_after_gru_step", reset_after_by_the_fast_loop, "hand_forward_loop"),
              ("unpack_gru_weights", unpacked_by_from_torch, "GRUScratch.from_torch"),
              ("text_perplexity", perplexity_by_the_course, "perplexity"),
              ("parameter_budget", budget_by_the_course, "GRUScratch.__init__")]
COURSE_ROUTES = HELPERS + NEW_COURSE  # every route through the course's own code (or the checker's formulas)
COURSE_ROUTE_IDS = [f"{name}-{function}-{i}" for i, (name, _, function) in enumerate(COURSE_ROUTES)]


@pytest.mark.parametrize("name, answer, function", COURSE_ROUTES, ids=COURSE_ROUTE_IDS)
def test_the_course_routes_give_the_right_values_when_unchecked(name, answer, function):
    assert_right_when_unchecked(name, answer)


@pytest.mark.parametrize("name, answer, function", COURSE_ROUTES, ids=COURSE_ROUTE_IDS)
def test_the_course_routes_are_refused(capsys, name, answer, function):
    fails(capsys, name, answer, f"ran {function} from the course's code (utils/")


def test_the_course_lstm_counts_right_but_is_refused(capsys):
    assert budget_by_the_course_lstm("LSTM", 28, 32) == CORRECT["parameter_budget"]("LSTM", 28, 32)
    fails(capsys, "parameter_budget", lambda kind, d, h: budget_by_the_course_lstm("LSTM", d, h),
          "from the course's code (utils/")


# torch doing the exercise

def reset_after_torch_weights(gru):
    """torch's GRU weights (rows r, z, n): the gate biases in b_ih, the candidate's hidden bias in b_hh."""
    w_ih = torch.cat([gru.W_xr, gru.W_xz, gru.W_xh], 1).T
    w_hh = torch.cat([gru.W_hr, gru.W_hz, gru.W_hh], 1).T
    return w_ih, w_hh, torch.cat([gru.b_r, gru.b_z, gru.b_h]), torch.cat([torch.zeros_like(gru.b_r)] * 2 + [gru.b_hh])


def reset_after_by_torch_layer(kind):
    def answer(gru, X, H):
        layer = kind(X.shape[1], H.shape[1]).double()
        suffix = "_l0" if kind is nn.GRU else ""
        with torch.no_grad():
            for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), reset_after_torch_weights(gru)):
                getattr(layer, name + suffix).copy_(value)
        return layer(X, H) if kind is nn.GRUCell else layer(X[None], H[None])[0][0]
    return answer


def budget_by_torch(build):
    def answer(kind, d, h):
        return sum(p.numel() for p in build(kind, d, h).parameters()), CORRECT["parameter_budget"](kind, d, h)[1]
    return answer


class CountedGRU(nn.GRU):
    def __init__(self, d, h):
        super().__init__(d, h)


NEW_TORCH = [("reset_after_gru_step", lambda gru, X, H: torch.gru_cell(X, H, *reset_after_torch_weights(gru)),
              "torch.gru_cell", "your code used torch's recurrent layers"),
             ("reset_after_gru_step", reset_after_by_torch_layer(nn.GRUCell), "nn.GRUCell",
              "your code used torch's recurrent layers"),
             ("reset_after_gru_step", reset_after_by_torch_layer(nn.GRU), "nn.GRU", "your code used torch's recurrent layers"),
             ("parameter_budget", budget_by_torch(lambda kind, d, h: getattr(nn, kind)(d, h)), "nn.GRU",
              "your code called RNNBase.__init__, which this check does not allow: count the parameters from the equations"),
             ("parameter_budget", budget_by_torch(lambda kind, d, h: getattr(nn, kind)(d, h, device="meta")), "meta device",
              "called RNNBase.__init__"),
             ("parameter_budget", budget_by_torch(lambda kind, d, h: getattr(nn, kind + "Cell")(d, h)
                                                  if kind != "RNN" else nn.RNNCell(d, h)), "nn.GRUCell",
              "called RNNCellBase.__init__"),
             ("parameter_budget", budget_by_torch(lambda kind, d, h: CountedGRU(d, h)), "a subclass of nn.GRU",
              "called RNNBase.__init__"),
             ("parameter_budget", budget_by_torch(lambda kind, d, h: d2l.GRU(d, h, num_layers=1)), "d2l.GRU",
              "called RNNBase.__init__"),
             ("parameter_budget", lambda kind, d, h: (sum(p.numel() for p in d2l.RNNScratch(d, h).parameters())
                                                      * checks.BLOCKS[kind] + checks.BLOCKS[kind] * h,
                                                      CORRECT["parameter_budget"](kind, d, h)[1]), "d2l.RNNScratch",
              "called RNNScratch.__init__")]
NEW_TORCH_IDS = [f"{name}-{how}" for name, _, how, _ in NEW_TORCH]


@pytest.mark.parametrize("name, answer, how, fragment", NEW_TORCH, ids=NEW_TORCH_IDS)
def test_torch_doing_the_new_exercises_is_right_when_unchecked(name, answer, how, fragment):
    assert_right_when_unchecked(name, answer)


@pytest.mark.parametrize("name, answer, how, fragment", NEW_TORCH, ids=NEW_TORCH_IDS)
def test_torch_doing_the_new_exercises_is_refused(capsys, name, answer, how, fragment):
    fails(capsys, name, answer, fragment)


def test_a_layer_built_before_the_check_does_not_count_other_sizes(capsys):
    built = {(kind, 28, 32): sum(p.numel() for p in getattr(nn, kind)(28, 32).parameters()) for kind in ("GRU", "LSTM")}

    def looked_up(kind, d, h):
        count = built.get((kind, d, h), 0)
        return count, CORRECT["parameter_budget"](kind, d, h)[1]
    fails(capsys, "parameter_budget", looked_up, "for RNN, d=8, h=59 the count is 0")


def test_probing_the_layer_with_inputs_is_refused(capsys):
    def probed(layer):  # reading weights off the layer's outputs runs the layer
        layer(torch.zeros(1, 1, layer.input_size, dtype=torch.float64))
        return CORRECT["unpack_gru_weights"](layer)
    fails(capsys, "unpack_gru_weights", probed, "your code used torch's recurrent layers")


# numbers that lie

class LyingFloat(float):
    """Equal to, and as close as wanted to, anything."""

    __eq__ = lambda self, other: True
    __sub__ = __rsub__ = lambda self, other: 0.0
    __abs__ = __float__ = lambda self: 0.0
    __le__ = __ge__ = lambda self, other: True
    __hash__ = float.__hash__


class LyingInt(int):
    __eq__ = lambda self, other: True
    __ne__ = lambda self, other: False
    __int__ = __index__ = lambda self: 5952
    __hash__ = int.__hash__


def test_lying_numbers_are_read_by_their_values(capsys):
    assert LyingFloat(0.0) == 3.0 and LyingInt(0) == 5952
    fails(capsys, "text_perplexity", lambda losses, counts: LyingFloat(0.0), "the perplexity is 0, expected")
    fails(capsys, "parameter_budget", lambda kind, d, h: (LyingInt(0), LyingInt(0)), "the count is 0, expected 5952")


def test_the_new_exercises_stored_solutions_pass_their_checks(capsys):
    """The solutions of the chapters, compiled from their stored cells (as the graded cells run them), pass."""
    for name, (notebook, function) in SOLUTIONS.items():
        if name not in NEW_ARGS and name != "hand_set_gates":
            continue
        namespace = {"torch": torch, "nn": nn}
        exec(solution_source(repo_root() / "notebooks" / notebook, function), namespace)
        check(name, namespace[function])
        check(name, namespace[function], **VARIATIONS[name])
    capsys.readouterr()


def test_the_budget_checks_refusals_end_with_it(capsys):
    fails(capsys, "parameter_budget", budget_by_torch(lambda kind, d, h: getattr(nn, kind)(d, h)), "RNNBase.__init__")
    # the next check builds its nn.GRU and lets the answer build one: only running it is refused there
    fails(capsys, "reset_after_gru_step", reset_after_by_torch_layer(nn.GRU), "your code used torch's recurrent layers")
    check("unpack_gru_weights", CORRECT["unpack_gru_weights"])
    assert capsys.readouterr().out.startswith("✓ unpack_gru_weights")
    assert sum(p.numel() for p in nn.GRU(28, 32).parameters()) == 5952
