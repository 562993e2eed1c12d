"""Autograded checks for the course's exercises: ``check(name, answer, **variation)``.

A graded cell of a chapter runs ``assert check("gru_step", gru_step)`` (nbgrader's hidden tests add other
shapes and seeds). Each check runs the student's answer on small random inputs and prints ONE line: ``✓ ...``
when it passed (it returns True), or ``✗ ...`` saying what is wrong (not implemented yet, which shape, which
gate, which gradient, which time step), and then raises AssertionError with that line and what to do next.
An exception in the student's code is reported by its type and message, never as a traceback; a warning is
named in the line, never printed.

What keeps a check honest, inside the student's own Python process:

- ``check`` runs fresh copies of this file and of :mod:`utils.answer_guard`, loaded from disk at every call
  from the code's own file name (not ``__file__``): changing their objects in the notebook changes nothing
  graded; and it raises by itself, so a graded cell whose ``assert`` was dropped still fails;
- the answer runs under :func:`utils.answer_guard.run`: no code of the course runs but what the answer is
  given, no torch recurrent kernel, no autograd in the backward exercise, no recurrent layer built where the
  exercise is to count its parameters (chapter 07); matrix products are counted at torch's ATen level; the
  answer's tensors are taken as plain copies, its numbers read by their values;
- the expected values are computed only after the answer returned, from copies of its inputs, with this
  file's own formulas (written from the equations); a NaN or an infinity is never close to anything.

What no check in the student's process can guarantee is listed in the README ("What the checks guarantee").
"""
import contextlib
import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from utils import answer_guard as guard  # check() gives each fresh copy of this module a fresh guard

ATOL = 1e-6
WARNINGS = []  # what the student's code warned during this (fresh) module's check


class CheckFailed(Exception):
    """What is wrong with the student's code, in one line."""


# ------------------------------------------------------------------------------------------- the entry point

def check(name: str, answer, **variation) -> bool:
    """Run the check ``name`` (``'gru_step'``, ``'ideal_gate_schedule'``, ...) on ``answer``; ``variation``
    (``seed``, sizes) is what hidden tests change. Prints one line; returns True, or raises AssertionError."""
    here = Path(sys._getframe().f_code.co_filename)
    fresh = _load(here, "_course_checks")
    fresh.guard = _load(here.with_name("answer_guard.py"), "_course_answer_guard")
    if name not in fresh.CHECKS:
        raise ValueError(f"no check {name!r}; the checks are {sorted(fresh.CHECKS)}")
    passed, line = fresh.run_check(name, answer, variation)
    print(line)
    if not passed:
        raise AssertionError(f"{line[2:]} (fix your code, run its cell, then run this cell again)")
    return True


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_check(name: str, answer, variation: dict) -> tuple[bool, str]:
    """``(passed, the one line)`` of the check ``name``; the global random state is left as it was."""
    try:
        with guard.collector_paused(), torch.random.fork_rng(devices=[]):
            passed, line = True, f"✓ {name}: {CHECKS[name](answer, **variation)}"
    except CheckFailed as failure:
        passed, line = False, f"✗ {name}: {failure}"
    if WARNINGS:
        more = f", and {len(WARNINGS) - 1} more" if len(WARNINGS) > 1 else ""
        line += f" (your code warned: {WARNINGS[0]}{more})"
    return passed, line


def _call(answer, *args, given=(), autograd=True, sight=False) -> "guard.Outcome":
    """Run the student's code under the guard (see :func:`utils.answer_guard.run`); anything wrong becomes a
    one-line CheckFailed."""
    try:
        outcome = guard.run(answer, *args, given=given, autograd=autograd, sight=sight)
    except guard.Breach as breach:
        raise CheckFailed(str(breach)) from None
    except guard.Raised as raised:
        if raised.not_implemented:
            hint = f" ({raised.message})" if raised.message else ""
            raise CheckFailed(f"not implemented yet{hint}: replace raise NotImplementedError() by your code") from None
        raise CheckFailed(f"your code raised {raised}") from None
    WARNINGS.extend(outcome.warnings)
    return outcome


# ----------------------------------------------------------------------------------------------- comparisons

def _tensor(value, what: str, expected_shape: tuple) -> torch.Tensor:
    """A returned value (a plain copy: see :func:`utils.answer_guard.plain`) as a float64 tensor of the
    expected shape, holding finite numbers."""
    if type(value) is not guard.PLAIN:
        raise CheckFailed(f"{what} should be a tensor of shape {tuple(expected_shape)}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(expected_shape):
        raise CheckFailed(f"wrong shape for {what}: expected {tuple(expected_shape)}, got {tuple(value.shape)}")
    if value.is_complex():
        raise CheckFailed(f"{what} holds complex numbers; it should hold real ones")
    value = value.to("cpu", torch.float64)
    if not bool(torch.isfinite(value).all()):
        raise CheckFailed(f"{what} holds NaN or infinite values")
    return value


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal within ATOL, and finite: a NaN or an infinity is never close to anything."""
    difference = (a - b).abs()
    return bool(torch.isfinite(difference).all()) and difference.max().item() <= ATOL


def _difference(got, want, what: str) -> str:
    diff = (got - want).abs()
    return (f"{what} differs from the expected values in {int((diff > ATOL).sum())} of {diff.numel()} entries "
            f"(largest difference {diff.max().item():.3g})")


def _judge(got, cases: dict, what: str, success: str) -> str:
    """``success`` when ``got`` is ``cases["expected"]``; otherwise the first named mistake it equals, or how
    far it is."""
    if _close(got, cases["expected"]):
        return success
    for description, value in cases.items():
        if description != "expected" and _close(got, value):
            raise CheckFailed(description)
    raise CheckFailed(_difference(got, cases["expected"], what))


def _random(generator, *shape, scale=1.0):
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale


# ---------------------------------------------------------------------- the GRU steps (chapters 03 and 08)

def _gru_params(generator, num_inputs, num_hiddens, gates):
    """Visible weights and nonzero biases (so that a forgotten bias shows) for the gates in ``gates`` and
    the candidate."""
    p = {}
    for g in gates + ("h",):
        p[f"W_x{g}"] = _random(generator, num_inputs, num_hiddens, scale=0.5)
        p[f"W_h{g}"] = _random(generator, num_hiddens, num_hiddens, scale=0.5)
        p[f"b_{g}"] = _random(generator, num_hiddens, scale=0.5)
    return p


def _gru_new_state(p, X, H, gates, *, swap=False, reset="before", update="d2l"):
    """d2l's step, Z = σ(X W_xz + H W_hz + b_z), R = σ(X W_xr + H W_hr + b_r),
    H~ = tanh(X W_xh + (R*H) W_hh + b_h), H' = Z*H + (1-Z)*H~, for the gates in ``gates``; the keywords
    make the common mistakes: ``swap`` the gates, ``reset`` "none" or "after" the matmul, ``update``
    "reversed" or "none"."""
    sig = torch.sigmoid
    gate = lambda g: sig(X @ p[f"W_x{g}"] + H @ p[f"W_h{g}"] + p[f"b_{g}"])
    Z = (gate("r") if swap else gate("z")) if "z" in gates else None
    R = (gate("z") if swap else gate("r")) if "r" in gates else None
    if R is None or reset == "none":
        H_tilde = torch.tanh(X @ p["W_xh"] + H @ p["W_hh"] + p["b_h"])
    elif reset == "after":
        H_tilde = torch.tanh(X @ p["W_xh"] + R * (H @ p["W_hh"]) + p["b_h"])
    else:
        H_tilde = torch.tanh(X @ p["W_xh"] + (R * H) @ p["W_hh"] + p["b_h"])
    if Z is None or update == "none":
        return H_tilde
    return (1 - Z) * H + Z * H_tilde if update == "reversed" else Z * H + (1 - Z) * H_tilde


def _gru_mistakes(p, X, H, gates) -> dict:
    """The expected new state (under "expected"), then the new state of each common mistake."""
    cases = {"expected": _gru_new_state(p, X, H, gates)}
    if "z" in gates:
        cases["the update gate is used the other way round: H_new = (1 - Z) * H + Z * H_tilde, d2l's convention "
              "is H_new = Z * H + (1 - Z) * H_tilde"] = _gru_new_state(p, X, H, gates, update="reversed")
        cases["the update gate is missing: H_new equals the candidate H_tilde"] = _gru_new_state(
            p, X, H, gates, update="none")
    if "r" in gates:
        cases["the reset gate is not applied: the candidate should use (R * H) @ W_hh"] = _gru_new_state(
            p, X, H, gates, reset="none")
        cases["the reset gate multiplies H @ W_hh; d2l's candidate uses (R * H) @ W_hh"] = _gru_new_state(
            p, X, H, gates, reset="after")
    if "z" in gates and "r" in gates:
        cases["the gates are swapped: Z uses W_xz, W_hz, b_z and R uses W_xr, W_hr, b_r"] = _gru_new_state(
            p, X, H, gates, swap=True)
    for g in gates + ("h",):
        cases[f"the bias b_{g} is missing"] = _gru_new_state({**p, f"b_{g}": torch.zeros_like(p[f"b_{g}"])}, X, H, gates)
    return cases


def _check_gru_like_step(answer, gates, what, *, seed=0, batch=5, num_inputs=3, num_hiddens=4) -> str:
    generator = torch.Generator().manual_seed(seed)
    p = _gru_params(generator, num_inputs, num_hiddens, gates)
    X, H = _random(generator, batch, num_inputs), _random(generator, batch, num_hiddens)
    params = types.SimpleNamespace(**{k: v.clone() for k, v in p.items()})
    got = _tensor(_call(answer, params, X.clone(), H.clone()).value, "the returned H_new", (batch, num_hiddens))
    return _judge(got, _gru_mistakes(p, X, H, gates), "H_new", f"{what} matches d2l's equations on a random batch "
                  f"(B={batch}, {num_inputs} inputs, {num_hiddens} units)")


def check_gru_step(answer, **variation) -> str:
    """Chapter 03: ``answer(gru, X (B, in), H (B, h)) -> H_new (B, h)``, d2l's GRU step; ``gru`` holds
    ``W_xz``, ``W_hz``, ``b_z``, ``W_xr``, ``W_hr``, ``b_r``, ``W_xh``, ``W_hh``, ``b_h``."""
    return _check_gru_like_step(answer, ("z", "r"), "your step", **variation)


def check_reset_only_step(answer, **variation) -> str:
    """Chapter 08: ``answer(gru, X, H) -> H_new`` for a GRU without the update gate (``H_new = H~``)."""
    return _check_gru_like_step(answer, ("r",), "your reset-only step", **variation)


def check_update_only_step(answer, **variation) -> str:
    """Chapter 08: ``answer(gru, X, H) -> H_new`` for a GRU without the reset gate (the candidate sees H)."""
    return _check_gru_like_step(answer, ("z",), "your update-only step", **variation)


# ----------------------------------------------------------------------------- ideal gate values (chapter 05)

def _forced_states(p, X, Z, R, H0):
    """States of d2l's GRU with forced gates ``Z[t]``, ``R[t]``: ``(T, B, h)``."""
    states, H = [], H0
    for t in range(X.shape[0]):
        H_tilde = torch.tanh(X[t] @ p["W_xh"] + (R[t] * H) @ p["W_hh"] + p["b_h"])
        H = Z[t] * H + (1 - Z[t]) * H_tilde
        states.append(H)
    return torch.stack(states)


def check_ideal_gate_schedule(answer, *, seed=0, cases=((8, 3), (5, 0), (6, 4), (7, 5))) -> str:
    """Chapter 05: ``answer(seq_len, t_prime) -> (Z, R)`` (a tuple or a list), each ``(seq_len, 1, 1)`` in
    [0, 1], such that from a zero initial state every ``H_t`` with ``t >= t'`` depends on ``x_{t'}`` alone.
    Checked by what the gates do: on a random GRU, perturbing any other input leaves those states exactly as
    they were, perturbing ``x_{t'}`` changes them. Both exact families pass (``R = 0`` at ``t'``; or ``Z = 1``
    before ``t'``, which keeps the zero state, with ``R`` free at ``t'``)."""
    generator = torch.Generator().manual_seed(seed)
    for seq_len, t_prime in cases:
        result = _call(answer, seq_len, t_prime).value
        if type(result) not in (tuple, list) or len(result) != 2:
            got = f"{len(result)} values" if type(result) in (tuple, list) else type(result).__name__
            raise CheckFailed(f"should return a pair (Z, R), got {got}")
        Z, R = (_tensor(g, name, (seq_len, 1, 1)) for g, name in zip(result, "ZR"))
        for name, gate in (("Z", Z), ("R", R)):
            if ((gate < 0) | (gate > 1)).any():
                raise CheckFailed(f"{name} must lie in [0, 1] (a sigmoid's range), got {gate.flatten().tolist()}")
        p = {"W_xh": _random(generator, 3, 4), "W_hh": _random(generator, 4, 4), "b_h": _random(generator, 4)}
        X, H0 = _random(generator, seq_len, 2, 3), torch.zeros(2, 4, dtype=torch.float64)
        base = _forced_states(p, X, Z, R, H0)[t_prime:]
        for s in range(seq_len):
            moved = X.clone()
            moved[s] += _random(generator, 2, 3)
            effect = (_forced_states(p, moved, Z, R, H0)[t_prime:] - base).abs().max().item()
            if s != t_prime and effect > 1e-12:
                where = "before t'" if s < t_prime else "after t'"
                raise CheckFailed(f"with seq_len={seq_len}, t'={t_prime}: the states from t' on change by {effect:.3g} "
                                  f"when x_{s} ({where}) changes; they must depend on x_{t_prime} alone")
            if s == t_prime and effect < 1e-6:
                raise CheckFailed(f"with seq_len={seq_len}, t'={t_prime}: the states from t' on do not depend on "
                                  f"x_{t_prime} at all (the candidate at t' must enter the state)")
    return f"from t' on, the states depend on x_t' alone ({len(cases)} sequence lengths and t' values)"


# ----------------------------------------------------------------- the gated antisymmetric step (chapter 09)

class GatedAntisymmetricRNN:
    """The cell that chapter 09's exercise receives: what ``utils.antisymmetric.GatedAntisymmetricRNN`` offers
    (its parameters, ``recurrent_matrix()``, ``input_projection(x)``, ``recurrent_projection(h, A=None)``,
    ``integrate(a, b)``, additive integration), written here from its equations; its ``step`` is the
    exercise and refuses to run."""

    integration_mode, independent_recurrence = "addition", False

    def __init__(self, weight_ih, bias_ih, weight_hh, bias_hh, epsilon, gamma):
        self.weight_ih, self.bias_ih, self.weight_hh, self.bias_hh = weight_ih, bias_ih, weight_hh, bias_hh
        self.epsilon, self.gamma = epsilon, gamma
        self.input_size, self.hidden_size = weight_ih.shape[1], weight_hh.shape[0]

    def recurrent_matrix(self):
        eye = torch.eye(self.hidden_size, dtype=self.weight_hh.dtype)
        return self.weight_hh - self.weight_hh.T - self.gamma * eye

    def input_projection(self, x):
        return x @ self.weight_ih.T + self.bias_ih

    def recurrent_projection(self, h, A=None):
        return h @ (self.recurrent_matrix() if A is None else A).T + self.bias_hh

    def integrate(self, input_part, recurrent_part):
        return input_part + recurrent_part

    def step(self, x, h, A=None):
        raise guard.Refused("cell.step is the step the exercise asks you to write: compute it from the equation")

    def __repr__(self):
        return (f"GatedAntisymmetricRNN({self.input_size}, {self.hidden_size}, epsilon={self.epsilon}, "
                f"gamma={self.gamma}) (the check's)")


def check_gated_antisymmetric_step(answer, *, seed=0, batch=5, input_size=3, hidden_size=4, epsilon=0.3,
                                   gamma=0.2) -> str:
    """Chapter 09: ``answer(cell, x (B, input), h (B, hidden)) -> h_new``: ``r = A h + b_hh`` with
    ``A = W - W^T - gamma I``, ``z = sigmoid(W^z x + b^z + r)``, ``h_new = h + epsilon z tanh(W^h x + b^h + r)``.
    ``cell`` is a :class:`GatedAntisymmetricRNN` (this module's)."""
    generator = torch.Generator().manual_seed(seed)
    W_ih, b_ih = _random(generator, 2 * hidden_size, input_size), _random(generator, 2 * hidden_size, scale=0.5)
    W_hh, b_hh = _random(generator, hidden_size, hidden_size), _random(generator, hidden_size, scale=0.5)
    x, h = _random(generator, batch, input_size), _random(generator, batch, hidden_size)
    cell = GatedAntisymmetricRNN(W_ih.clone(), b_ih.clone(), W_hh.clone(), b_hh.clone(), epsilon, gamma)
    got = _tensor(_call(answer, cell, x.clone(), h.clone(), given=(cell,)).value, "the returned h_new",
                  (batch, hidden_size))
    A = W_hh - W_hh.T - gamma * torch.eye(hidden_size, dtype=torch.float64)
    gate_in, candidate_in = (x @ W_ih.T + b_ih).chunk(2, dim=-1)
    r = h @ A.T + b_hh
    z = torch.sigmoid(gate_in + r)
    cases = {
        "expected": h + epsilon * z * torch.tanh(candidate_in + r),
        "the gate and the candidate are swapped: weight_ih's first block is the gate's W^z, the second the "
        "candidate's W^h": h + epsilon * torch.sigmoid(candidate_in + r) * torch.tanh(gate_in + r),
        "the gate z is missing: h_new = h + epsilon * z * tanh(...)": h + epsilon * torch.tanh(candidate_in + r),
        "epsilon is missing: h_new = h + epsilon * z * tanh(...)": h + z * torch.tanh(candidate_in + r),
        "the old state h is not added: the step is h_new = h + epsilon * z * tanh(...)":
            epsilon * z * torch.tanh(candidate_in + r),
        "the recurrent matrix is used without antisymmetry: use cell.recurrent_matrix() (A = W - W^T - gamma I)":
            h + epsilon * torch.sigmoid(gate_in + h @ W_hh.T + b_hh) * torch.tanh(candidate_in + h @ W_hh.T + b_hh),
        "the recurrent matrix is applied as h @ A; the cell computes A h, i.e. h @ A.T":
            h + epsilon * torch.sigmoid(gate_in + h @ A + b_hh) * torch.tanh(candidate_in + h @ A + b_hh),
    }
    return _judge(got, cases, "h_new",
                  f"your step matches the gated antisymmetric cell's equations on a random batch (B={batch})")


# --------------------------------------------------------------------- the GRU classifier (chapter 12)

class _ConcatCell(nn.Module):
    """A GRU cell on ``[x, h]`` (the blog post's layout, written here independently): ``forward(x, h)``."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.reset_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.update_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x, h):
        xh = torch.cat((x, h), dim=1)
        r, z = torch.sigmoid(self.reset_gate(xh)), torch.sigmoid(self.update_gate(xh))
        return (1 - z) * h + z * torch.tanh(self.candidate(torch.cat((x, r * h), dim=1)))


def _concat_states(w: dict, X) -> list:
    """The state after each step of :class:`_ConcatCell` with parameters ``w`` (plain tensors), from zeros."""
    linear = lambda name, v: v @ w[f"{name}.weight"].T + w[f"{name}.bias"]
    states, h = [], torch.zeros(X.shape[0], w["candidate.weight"].shape[0], dtype=torch.float64)
    for t in range(X.shape[1]):
        xh = torch.cat((X[:, t], h), dim=1)
        r, z = torch.sigmoid(linear("reset_gate", xh)), torch.sigmoid(linear("update_gate", xh))
        h = (1 - z) * h + z * torch.tanh(linear("candidate", torch.cat((X[:, t], r * h), dim=1)))
        states.append(h)
    return states


@contextlib.contextmanager
def _default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _head(model, hidden_size, num_classes):
    """Copies of ``model.head``'s weight and bias, read without running the notebook's code (a property or a
    ``__getattr__`` of the model's class would run it unwatched)."""
    wanted = CheckFailed(f"the model needs a head nn.Linear({hidden_size}, {num_classes}) in self.head")
    if not issubclass(type(model), nn.Module):
        raise wanted
    modules = object.__getattribute__(model, "__dict__").get("_modules")
    head = dict.get(modules, "head") if isinstance(modules, dict) else None
    if not issubclass(type(head), nn.Linear):
        raise wanted
    parameters = object.__getattribute__(head, "__dict__").get("_parameters", {})
    weight, bias = dict.get(parameters, "weight"), dict.get(parameters, "bias")
    if type(weight) not in (guard.PLAIN, nn.Parameter) or tuple(weight.shape) != (num_classes, hidden_size):
        raise wanted
    if type(bias) not in (guard.PLAIN, nn.Parameter, type(None)):
        raise wanted
    with torch._C.DisableTorchFunction():
        copy = lambda t: torch._C.TensorBase.clone(torch._C.TensorBase.detach(t)).to(torch.float64)
        return copy(weight), torch.zeros(num_classes, dtype=torch.float64) if bias is None else copy(bias)


def check_gru_classifier(answer, *, seed=0, batch=4, steps=6, input_size=3, hidden_size=5, num_classes=7) -> str:
    """Chapter 12: ``answer(cell, num_classes)`` builds a model with ``cell`` and a ``head``
    ``nn.Linear(hidden_size, num_classes)``; its forward maps ``X`` of shape ``(B, T, input_size)`` to logits
    ``(B, num_classes)`` from each example's state after the last step (a zero initial state). The model is
    built with float64 as torch's default dtype."""
    torch.manual_seed(seed)
    cell = _ConcatCell(input_size, hidden_size).double()
    w = {name: parameter.detach().clone() for name, parameter in cell.named_parameters()}
    X = _random(torch.Generator().manual_seed(seed), batch, steps, input_size)
    with _default_dtype(torch.float64):
        model = _call(answer, cell, num_classes, given=(cell,)).value
    weight, bias = _head(model, hidden_size, num_classes)
    got = _tensor(_call(model, X.clone(), given=(cell,)).value, "the logits", (batch, num_classes))
    states = _concat_states(w, X)
    logits = lambda state: state @ weight.T + bias
    cases = {"expected": logits(states[-1])}
    for t in range(steps - 1):
        cases[f"the logits come from the state after step {t}; use the last step (t = T-1 = {steps - 1})"] = logits(
            states[t])
    cases["every row holds the last example's logits: states[-1] indexes the batch; take the last time step of "
          "every example"] = logits(states[-1][-1]).expand(batch, num_classes)
    return _judge(got, cases, "the logits",
                  f"logits of shape {(batch, num_classes)} from each example's last state (B={batch}, T={steps})")


# ------------------------------------------------------------- one step's backward by hand (chapter 10)

GRADIENT_NAMES = ("dZ", "dH_tilde", "da_h", "da_z", "dR", "da_r", "dH", "dX",
                  "dW_xz", "dW_hz", "db_z", "dW_xr", "dW_hr", "db_r", "dW_xh", "dW_hh", "db_h")


def _step(p, X, H):
    """One reset-before step: ``(a_z, a_r, a_h, Z, R, RH, H_tilde, H_new)``."""
    a_z = X @ p["W_xz"] + H @ p["W_hz"] + p["b_z"]
    a_r = X @ p["W_xr"] + H @ p["W_hr"] + p["b_r"]
    Z, R = torch.sigmoid(a_z), torch.sigmoid(a_r)
    RH = R * H
    a_h = X @ p["W_xh"] + RH @ p["W_hh"] + p["b_h"]
    H_tilde = torch.tanh(a_h)
    return a_z, a_r, a_h, Z, R, RH, H_tilde, Z * H + (1 - Z) * H_tilde


def _autograd_gradients(p, X, H, dH_new) -> dict:
    """Every gradient of :data:`GRADIENT_NAMES`, by autograd."""
    leaves = {k: v.clone().requires_grad_() for k, v in {**p, "X": X, "H": H}.items()}
    with torch.enable_grad():
        a_z, a_r, a_h, Z, R, _, H_tilde, H_new = _step(leaves, leaves["X"], leaves["H"])
        inner = {"dZ": Z, "dH_tilde": H_tilde, "da_h": a_h, "da_z": a_z, "dR": R, "da_r": a_r}
        for tensor in inner.values():
            tensor.retain_grad()
        H_new.backward(dH_new)
    return {**{name: t.grad for name, t in inner.items()}, **{f"d{k}": v.grad for k, v in leaves.items()}}


def check_gru_step_backward(answer, *, seed=0, batch=5, num_inputs=3, num_hiddens=4) -> str:
    """Chapter 10: ``answer(p, cache, dH_new) -> dict`` of the gradients of one reset-before GRU step:
    ``p`` holds the parameters, ``cache`` the step's ``X``, ``H``, ``Z``, ``R``, ``H_tilde``, ``RH`` and
    ``H_new``. Every gradient of :data:`GRADIENT_NAMES` is compared with autograd's; the first wrong one is
    named. Autograd is refused while the answer runs."""
    generator = torch.Generator().manual_seed(seed)
    p = _gru_params(generator, num_inputs, num_hiddens, ("z", "r"))
    X, H, dH_new = (_random(generator, batch, n) for n in (num_inputs, num_hiddens, num_hiddens))
    *_, Z, R, RH, H_tilde, H_new = _step(p, X, H)
    cache = {"X": X.clone(), "H": H.clone(), "Z": Z, "R": R, "H_tilde": H_tilde, "RH": RH, "H_new": H_new}
    got = _call(answer, {k: v.clone() for k, v in p.items()}, cache, dH_new.clone(), autograd=False).value
    if type(got) is not dict:
        raise CheckFailed(f"should return a dict of gradients, got {type(got).__name__}")
    missing = [name for name in GRADIENT_NAMES if name not in got]
    if missing:
        raise CheckFailed(f"the dict lacks {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    expected = _autograd_gradients(p, X, H, dH_new)
    for name in GRADIENT_NAMES:
        value = _tensor(got[name], name, expected[name].shape)
        if not _close(value, expected[name]):
            for other in GRADIENT_NAMES:
                if other != name and expected[other].shape == value.shape and _close(value, expected[other]):
                    raise CheckFailed(f"{name} is wrong: it holds what {other} should hold")
            if _close(value, -expected[name]):
                raise CheckFailed(f"{name} has the wrong sign")
            raise CheckFailed(f"{name} is wrong: " + _difference(value, expected[name], name))
    return f"all {len(GRADIENT_NAMES)} gradients equal autograd's (B={batch}, {num_inputs} inputs, {num_hiddens} units)"


# ------------------------------------------------------------- the fused reset-after step (chapter 11)

def check_fused_reset_after_step(answer, *, seed=0, batch=5, num_hiddens=4) -> str:
    """Chapter 11: ``answer(XW_t, H, W_h, b_hh) -> H_new``: one step of the reset-after GRU from the input
    projections ``XW_t`` ``(B, 3h)`` (biases included, columns ``[z | r | n]``), the state ``H`` ``(B, h)``, the
    fused hidden weights ``W_h`` ``(h, 3h)`` and the candidate's hidden bias ``b_hh`` ``(h,)``, with ONE matrix
    product: ``Z, R = sigmoid(XW_z,r + H W_h,zr)``, ``H~ = tanh(XW_n + R * (H W_h,n + b_hh))``. Products are
    counted at torch's ATen level (``@``, ``mm``, ``einsum``, ``F.linear``, ... each count), and the step must
    compute from its arguments with torch (nothing computed out of the check's sight)."""
    generator = torch.Generator().manual_seed(seed)
    h = num_hiddens
    XW, H, W_h, b_hh = (_random(generator, batch, 3 * h), _random(generator, batch, h), _random(generator, h, 3 * h),
                        _random(generator, h, scale=0.5))
    outcome = _call(answer, XW.clone(), H.clone(), W_h.clone(), b_hh.clone(), sight=True)
    got = _tensor(outcome.value, "the returned H_new", (batch, h))
    HW = H @ W_h
    Z, R = torch.sigmoid(XW[:, :2 * h] + HW[:, :2 * h]).chunk(2, dim=1)
    cases = {"expected": Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (HW[:, 2 * h:] + b_hh)),
             "the reset gate is applied before the matmul (d2l's form); this step resets after it: R * (H W_hn + b_hh)":
                 Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + (R * H) @ W_h[:, 2 * h:] + b_hh),
             "b_hh is added outside the reset: it belongs inside, R * (H W_hn + b_hh)":
                 Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * HW[:, 2 * h:] + b_hh),
             "the columns are read as [r | z | n]; the course's fused layout is [z | r | n]":
                 R * H + (1 - R) * torch.tanh(XW[:, 2 * h:] + Z * (HW[:, 2 * h:] + b_hh))}
    _judge(got, cases, "H_new", "")
    if outcome.products != 1:
        raise CheckFailed(f"the values are right, but your step made {outcome.products} matrix products; compute "
                          "H @ W_h once and split its columns")
    return f"H_new is right, with one matrix product (B={batch}, h={h})"


# ------------------------------------------------------------- numbers returned by an answer (chapters 06, 07)

def _number(value, what: str, *, integral=False):
    """A returned number as a Python float (or int when ``integral``), read without running the answer's code:
    a Python int or float (a subclass read by its value), a numpy scalar or one-element array, or a plain
    tensor with one element; a NaN or an infinity is refused."""
    kind = type(value)
    if issubclass(kind, bool):
        got = None
    elif issubclass(kind, int):
        got = int.__add__(0, value)
    elif issubclass(kind, float):
        got = float.__add__(0.0, value)
    elif kind.__module__ == "numpy" and isinstance(value, (np.integer, np.floating)):
        got = value.item()
    elif kind is np.ndarray and value.size == 1 and value.dtype.kind in "iuf":
        got = value.item()
    elif kind is guard.PLAIN and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
        got = value.item()
    else:
        got = None
    if got is None:
        shape = f" of shape {tuple(value.shape)}" if kind in (guard.PLAIN, np.ndarray) else ""
        raise CheckFailed(f"{what} should be a number, got {kind.__name__}{shape}")
    if not math.isfinite(got):
        raise CheckFailed(f"{what} is {got}, not a finite number" + (" (the exponential of a summed loss overflows: "
                          "average first)" if got == math.inf and "perplexity" in what else ""))
    if integral:
        if got != int(got):
            raise CheckFailed(f"{what} should be a whole number, got {got}")
        return int(got)
    return float(got)


@contextlib.contextmanager
def _also_refused(functions):
    """While inside, the guard refuses the Python ``functions`` too (torch's code that does an exercise's work):
    the guard that :func:`check` loaded for this check is the only one changed, and only meanwhile."""
    original = guard._refused_calls
    guard._refused_calls = lambda autograd: original(autograd) | set(functions)
    try:
        yield
    finally:
        guard._refused_calls = original


# ------------------------------------------------------------------ gates set by hand (chapter 01)

GATE_ACTIONS = {"write": (0.0, 1.0), "skip": (1.0, None), "reset": (0.0, 0.0)}  # (Z, R) in d2l's convention
GATE_TOLERANCE = 1e-6
_ACTION_MISTAKES = {  # (action, gate, the wrong end it is at) -> what that does
    ("skip", "Z", 0.0): "Z = 0 replaces the state by the candidate; in d2l's convention Z = 1 keeps the old state",
    ("write", "Z", 1.0): "Z = 1 keeps the old state; a write takes the candidate, Z = 0 (d2l's convention)",
    ("reset", "Z", 1.0): "Z = 1 keeps the old state; a reset takes the candidate (Z = 0) built without it (R = 0)",
    ("write", "R", 0.0): "R = 0 hides the old state from the candidate, which is a reset; a write needs R = 1",
    ("reset", "R", 1.0): "R = 1 lets the candidate read the old state; a reset needs R = 0",
}


def _gate_pair(result, num_symbols, num_hiddens):
    """``(W_xz, W_xr)`` from the answer's pair (a tuple or a list) or dict with those keys."""
    if type(result) is dict:
        missing = [key for key in ("W_xz", "W_xr") if key not in result]
        if missing:
            raise CheckFailed(f"the dict lacks {missing[0]}")
        result = (result["W_xz"], result["W_xr"])
    if type(result) not in (tuple, list) or len(result) != 2:
        got = f"{len(result)} values" if type(result) in (tuple, list) else type(result).__name__
        raise CheckFailed(f"should return a pair (W_xz, W_xr), got {got}")
    return tuple(_matrix(w, name, (num_symbols, num_hiddens)) for w, name in zip(result, ("W_xz", "W_xr")))


def _matrix(value, what: str, shape: tuple) -> torch.Tensor:
    """:func:`_tensor`, or a list of lists of numbers (read by :func:`_number`) of that shape."""
    if type(value) is not list:
        return _tensor(value, what, shape)
    rows = [row for row in value if type(row) is list and len(row) == shape[1]]
    if len(value) != shape[0] or len(rows) != shape[0]:
        raise CheckFailed(f"{what} should be a tensor (or a list of lists) of shape {shape}")
    return torch.tensor([[_number(v, f"an entry of {what}") for v in row] for row in rows], dtype=torch.float64)


def _gate_mistake(actions, Z, R) -> str | None:
    """What is wrong with the gates ``Z``, ``R`` (symbols x units) for ``actions``, or None."""
    for i, action in enumerate(actions):
        for gate, values, ideal in (("Z", Z[i], GATE_ACTIONS[action][0]), ("R", R[i], GATE_ACTIONS[action][1])):
            if ideal is None:
                continue
            off = (values - ideal).abs()
            if off.max().item() <= GATE_TOLERANCE:
                continue
            unit = int(off.argmax())
            value = values[unit].item()
            where = f"symbol {i} ('{action}') gets {gate} = {{}} in unit {unit}"
            wrong_end = 1.0 - ideal
            if abs(value - wrong_end) <= GATE_TOLERANCE:
                return f"{where.format(f'{wrong_end:g}')}: {_ACTION_MISTAKES[(action, gate, wrong_end)]}"
            return (f"{where.format(f'{value:.6g}')}, not within {GATE_TOLERANCE:g} of {ideal:g}: a sigmoid reaches "
                    "0 or 1 only in the limit, so the pre-activation must be large, |a| of 14 or more, with the right "
                    "sign")
    return None


def check_hand_set_gates(answer, *, seed=0, actions=("reset", "write", "skip", "write"), num_hiddens=3) -> str:
    """Chapter 01: ``answer(actions, num_hiddens) -> (W_xz, W_xr)``, each ``(len(actions), num_hiddens)``: the
    input weights of the update and reset gates of a GRU whose gates see the one-hot input alone
    (``W_hz = W_hr = 0``, no gate biases), so that symbol ``i`` does ``actions[i]``: ``"write"`` (Z = 0, R = 1),
    ``"skip"`` (Z = 1, any R) or ``"reset"`` (Z = 0, R = 0), each gate within 1e-6 of its value. The check
    computes the gates from the weights, then runs its own GRU step with them on random sequences."""
    actions, n = tuple(actions), len(actions)
    W_xz, W_xr = _gate_pair(_call(answer, list(actions), num_hiddens).value, n, num_hiddens)
    Z, R = torch.sigmoid(W_xz), torch.sigmoid(W_xr)  # the gates of each symbol's one-hot input
    mistake = _gate_mistake(actions, Z, R)
    if mistake and _gate_mistake(actions, R, Z) is None:
        raise CheckFailed("the pair is swapped: return (W_xz, W_xr), the update gate's weights first")
    if mistake:
        raise CheckFailed(mistake)
    generator = torch.Generator().manual_seed(seed)
    p = {"W_xh": _random(generator, n, num_hiddens), "W_hh": _random(generator, num_hiddens, num_hiddens, scale=0.5),
         "b_h": _random(generator, num_hiddens, scale=0.5)}
    symbols = torch.randint(n, (20, 8), generator=generator)
    X, H0 = nn.functional.one_hot(symbols, n).to(torch.float64), _random(generator, 8, num_hiddens)
    ideal_Z = torch.tensor([GATE_ACTIONS[a][0] for a in actions], dtype=torch.float64)[:, None].expand(n, num_hiddens)
    ideal_R = torch.stack([R[i] if GATE_ACTIONS[a][1] is None else torch.full_like(R[i], GATE_ACTIONS[a][1])
                           for i, a in enumerate(actions)])
    got = _forced_states(p, X, X @ Z, X @ R, H0)
    want = _forced_states(p, X, X @ ideal_Z, X @ ideal_R, H0)
    if not (got - want).abs().max().item() <= 1e-4:  # gates within 1e-6 of the ideal ones move no state further
        raise CheckFailed(_difference(got, want, "the states of a GRU with your gates"))
    sizes = f"{n} symbol{'s' * (n != 1)}, {num_hiddens} unit{'s' * (num_hiddens != 1)}"
    return f"each symbol writes, skips or resets as asked ({sizes}), and a GRU with these gates follows the ideal one"


# ----------------------------------------------------------------- the reset-after step (chapter 02)

def _reset_after_new_state(p, X, H, *, b_hh="inside", update="d2l", swap=False, reset="after"):
    """The reset-after step, H~ = tanh(X W_xh + b_h + R * (H W_hh + b_hh)), H' = Z * H + (1 - Z) * H~; the
    keywords make the common mistakes: ``b_hh`` "outside" the reset or "none", ``update`` "reversed",
    ``swap`` the gates, ``reset`` "before" the matmul (d2l's form, b_hh added outside)."""
    gate = lambda g: torch.sigmoid(X @ p[f"W_x{g}"] + H @ p[f"W_h{g}"] + p[f"b_{g}"])
    Z, R = (gate("r"), gate("z")) if swap else (gate("z"), gate("r"))
    if reset == "before":
        hidden = (R * H) @ p["W_hh"] + p["b_hh"]
    elif b_hh == "inside":
        hidden = R * (H @ p["W_hh"] + p["b_hh"])
    else:
        hidden = R * (H @ p["W_hh"]) + (p["b_hh"] if b_hh == "outside" else 0)
    H_tilde = torch.tanh(X @ p["W_xh"] + p["b_h"] + hidden)
    return (1 - Z) * H + Z * H_tilde if update == "reversed" else Z * H + (1 - Z) * H_tilde


def check_reset_after_gru_step(answer, *, seed=0, batch=5, num_inputs=3, num_hiddens=4) -> str:
    """Chapter 02: ``answer(gru, X (B, in), H (B, h)) -> H_new (B, h)``, one step of the reset-after GRU
    (Cho et al. v1, PyTorch's ``nn.GRU``) in d2l's notation: ``gru`` holds d2l's nine parameters and ``b_hh``,
    ``H~ = tanh(X W_xh + b_h + R * (H W_hh + b_hh))``, ``H_new = Z * H + (1 - Z) * H~``."""
    generator = torch.Generator().manual_seed(seed)
    p = _gru_params(generator, num_inputs, num_hiddens, ("z", "r"))
    p["b_hh"] = _random(generator, num_hiddens, scale=0.5)
    X, H = _random(generator, batch, num_inputs), _random(generator, batch, num_hiddens)
    params = types.SimpleNamespace(**{k: v.clone() for k, v in p.items()})
    got = _tensor(_call(answer, params, X.clone(), H.clone()).value, "the returned H_new", (batch, num_hiddens))
    cases = {"expected": _reset_after_new_state(p, X, H),
             "the reset gate scales H before the matmul (d2l's reset-before form); here it scales the product: "
             "R * (H @ W_hh + b_hh)": _reset_after_new_state(p, X, H, reset="before"),
             "b_hh is added outside the reset: it belongs inside, R * (H @ W_hh + b_hh)":
                 _reset_after_new_state(p, X, H, b_hh="outside"),
             "b_hh is missing: the candidate is tanh(X @ W_xh + b_h + R * (H @ W_hh + b_hh))":
                 _reset_after_new_state(p, X, H, b_hh="none"),
             "the update gate is used the other way round: in d2l's (and PyTorch's) convention "
             "H_new = Z * H + (1 - Z) * H_tilde": _reset_after_new_state(p, X, H, update="reversed"),
             "the gates are swapped: Z uses W_xz, W_hz, b_z and R uses W_xr, W_hr, b_r":
                 _reset_after_new_state(p, X, H, swap=True)}
    for name in ("b_z", "b_r", "b_h"):
        cases[f"the bias {name} is missing"] = _reset_after_new_state({**p, name: torch.zeros_like(p[name])}, X, H)
    return _judge(got, cases, "H_new", f"your step matches the reset-after equations on a random batch (B={batch}, "
                  f"{num_inputs} inputs, {num_hiddens} units)")


# ------------------------------------------------------------- nn.GRU's weights in d2l's layout (chapter 04)

UNPACKED_NAMES = ("W_xr", "W_xz", "W_xh", "W_hr", "W_hz", "W_hh", "b_r", "b_z", "b_h", "b_hh")


def _unpacked(w_ih, w_hh, b_ih, b_hh) -> dict:
    """d2l's layout of ``nn.GRU``'s stacked weights (rows r, z, n), the gate biases added, the candidate's kept."""
    h = w_hh.shape[1]
    r, z, n = slice(0, h), slice(h, 2 * h), slice(2 * h, 3 * h)
    return {"W_xr": w_ih[r].T, "W_xz": w_ih[z].T, "W_xh": w_ih[n].T, "W_hr": w_hh[r].T, "W_hz": w_hh[z].T,
            "W_hh": w_hh[n].T, "b_r": b_ih[r] + b_hh[r], "b_z": b_ih[z] + b_hh[z], "b_h": b_ih[n], "b_hh": b_hh[n]}


def _unpacking_mistake(name, value, expected, raw) -> str:
    """What a wrong (right-shaped) ``value`` for ``name`` most likely is."""
    w_ih, w_hh, b_ih, b_hh = raw
    h = w_hh.shape[1]
    for other in UNPACKED_NAMES:
        if other != name and expected[other].shape == value.shape and _close(value, expected[other]):
            return (f"{name} holds what {other} should hold: nn.GRU stacks its rows in the order r, z, n (reset, "
                    "update, new)")
    if name.startswith("W_h") and _close(value, expected[name].T):
        return f"{name} is not transposed: PyTorch's rows are d2l's columns"
    part = {"r": slice(0, h), "z": slice(h, 2 * h)}.get(name[-1])
    if name in ("b_r", "b_z") and (_close(value, b_ih[part]) or _close(value, b_hh[part])):
        return f"{name} holds one of the gate's two biases: they are added, {name} = b_i{name[-1]} + b_h{name[-1]}"
    if name == "b_h" and _close(value, b_ih[2 * h:] + b_hh[2 * h:]):
        return "b_h adds b_hn, which sits inside the reset: b_h = b_in alone, and b_hn is b_hh"
    return f"{name} is wrong: " + _difference(value, expected[name], name)


def check_unpack_gru_weights(answer, *, seed=0, num_inputs=5, num_hiddens=4) -> str:
    """Chapter 04: ``answer(gru) -> dict``: a one-layer ``nn.GRU`` (float64) unpacked into d2l's layout, the
    keys of :data:`UNPACKED_NAMES`: ``W_x*`` ``(num_inputs, h)``, ``W_h*`` ``(h, h)``, ``b_*`` ``(h,)``, with
    ``b_r = b_ir + b_hr``, ``b_z = b_iz + b_hz``, ``b_h = b_in``, ``b_hh = b_hn`` (what ``GRUScratch.from_torch``
    does, which the answer may not call). Then the check runs its own reset-after loop with the answer's tensors
    against the ``nn.GRU``."""
    generator = torch.Generator().manual_seed(seed)
    h = num_hiddens
    raw = (_random(generator, 3 * h, num_inputs), _random(generator, 3 * h, h), _random(generator, 3 * h, scale=0.5),
           _random(generator, 3 * h, scale=0.5))
    layer = nn.GRU(num_inputs, h).double()
    with torch.no_grad():
        for name, value in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), raw):
            getattr(layer, name).copy_(value)
    try:
        got = _call(answer, layer).value
    except CheckFailed as failure:
        if "returned a Parameter" in str(failure):
            raise CheckFailed(f"{failure}: a parameter of the layer itself is one of PyTorch's stacked (3h) tensors; "
                              "return d2l's pieces of it") from None
        raise
    if type(got) is not dict:
        raise CheckFailed(f"should return a dict of tensors (W_xr, W_xz, ...), got {type(got).__name__}")
    missing = [name for name in UNPACKED_NAMES if name not in got]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckFailed(f"the dict lacks {missing[0]}{more}")
    expected = _unpacked(*raw)
    values = {}
    for name in UNPACKED_NAMES:
        shape, value = expected[name].shape, got[name]
        if type(value) is guard.PLAIN and len(shape) == 2 and tuple(value.shape) == tuple(shape)[::-1] != tuple(shape):
            raise CheckFailed(f"wrong shape for {name}: expected {tuple(shape)}, got {tuple(value.shape)}; d2l's "
                              f"weights are the transposes of PyTorch's rows")
        values[name] = _tensor(value, name, shape)
        if not _close(values[name], expected[name]):
            raise CheckFailed(_unpacking_mistake(name, values[name], expected, raw))
    X = _random(generator, 6, 2, num_inputs)
    reference = nn.GRU(num_inputs, h).double()
    with torch.no_grad():
        for name, value in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), raw):
            getattr(reference, name).copy_(value)
        outputs = reference(X)[0]
    H, states = torch.zeros(2, h, dtype=torch.float64), []
    for x in X:
        H = _reset_after_new_state(values, x, H)
        states.append(H)
    if not (torch.stack(states) - outputs).abs().max().item() <= 1e-5:  # float32 tensors that passed may round
        raise CheckFailed(_difference(torch.stack(states), outputs, "a reset-after loop with your tensors"))
    return (f"all {len(UNPACKED_NAMES)} tensors are right, and a reset-after loop with them reproduces the nn.GRU "
            f"({num_inputs} inputs, {h} units)")


# ------------------------------------------------------------ the perplexity of a text (chapter 06)

PERPLEXITY_RTOL = 1e-6


def _minibatches(generator, batches):
    """Per-minibatch mean losses (nats per token, float64) and token counts (int64) of a text: full
    minibatches of varied window counts, and a last, smaller one."""
    counts = torch.randint(4, 65, (batches,), generator=generator) * 32
    counts[-1] = torch.randint(1, 32, (1,), generator=generator).item() * 7
    losses = 1.2 + 1.8 * torch.rand(batches, generator=generator, dtype=torch.float64)
    return losses, counts


def check_text_perplexity(answer, *, seed=0, cases=(9, 1, 4)) -> str:
    """Chapter 06: ``answer(losses (n,), counts (n,)) -> perplexity``: ``losses[i]`` is the mean cross-entropy
    (natural log) over the ``counts[i]`` tokens of minibatch ``i``; the perplexity of the whole text is
    ``exp(sum(losses * counts) / sum(counts))``, not a mean of the minibatches' perplexities. Any number is
    accepted (a float, a numpy scalar, a one-element tensor), within a relative 1e-6. ``cases``: the number of
    minibatches of each text."""
    generator = torch.Generator().manual_seed(seed)
    texts = [_minibatches(generator, n) for n in cases]
    got = [_number(_call(answer, losses.clone(), counts.clone()).value, "the returned perplexity")
           for losses, counts in texts]
    for (losses, counts), value in zip(texts, got):
        weights = counts.to(torch.float64) / counts.sum()
        mean = (weights * losses).sum().item()
        mistakes = {"the mean of the minibatches' perplexities: each minibatch's exp(loss) counts once, whatever its "
                    "size; average the losses per token first": losses.exp().mean().item(),
                    "exp of the unweighted mean loss: the minibatches hold different numbers of tokens, so weight "
                    "each loss by its count": math.exp(losses.mean().item()),
                    "the token-weighted mean of the minibatches' perplexities: take the exponential of the weighted "
                    "mean loss, not the mean of the exponentials": (weights * losses.exp()).sum().item(),
                    "the mean cross-entropy per token, not its exponential (the perplexity)": mean,
                    "2 to the power of the mean loss: the losses are natural-log cross-entropies, so the perplexity "
                    "is e to that power": 2.0 ** mean}
        expected = math.exp(mean)
        if abs(value - expected) <= PERPLEXITY_RTOL * expected:
            continue
        for description, wrong in mistakes.items():
            if abs(value - wrong) <= PERPLEXITY_RTOL * abs(wrong):
                raise CheckFailed(f"{description} (a text of {len(losses)} minibatches)")
        raise CheckFailed(f"on a text of {len(losses)} minibatches the perplexity is {value:.6g}, expected "
                          f"{expected:.6g}")
    return f"the perplexity of {len(cases)} texts of {', '.join(map(str, cases))} minibatches, weighted by their tokens"


# -------------------------------------------------------- parameter counts and budgets (chapter 07)

BLOCKS = {"RNN": 1, "GRU": 3, "LSTM": 4}  # blocks (X W_x., H W_h., biases) per cell


def _layer_parameters(kind, d, h, *, biases=2, blocks=None, hidden=True) -> int:
    """Parameters of PyTorch's one-layer ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (two bias vectors per block);
    the keywords make the common mistakes."""
    return (BLOCKS[kind] if blocks is None else blocks) * (d * h + (h * h if hidden else 0) + biases * h)


def _rnn_width(d, budget) -> int:
    """The largest width of an ``nn.RNN`` with ``d`` inputs whose parameters do not exceed ``budget``."""
    width = 1
    while _layer_parameters("RNN", d, width + 1) <= budget:
        width += 1
    return width


def _recurrent_constructors():
    """The constructors of torch's (and d2l's) recurrent layers, which count an exercise's parameters."""
    found = [nn.RNNBase.__init__, nn.RNNCellBase.__init__]
    with contextlib.suppress(ImportError, AttributeError):
        found.append(importlib.import_module("d2l.torch").RNNScratch.__init__)
    return found


def check_parameter_budget(answer, *, cases=(("GRU", 28, 32), ("LSTM", 28, 32), ("RNN", 8, 59), ("GRU", 8, 32))) -> str:
    """Chapter 07: ``answer(kind, d, h) -> (count, width)``: ``count``, the parameters of PyTorch's one-layer
    ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM`` (``kind`` "RNN", "GRU" or "LSTM") with ``d`` inputs and ``h`` units
    (two bias vectors per block, as nn.* keeps them); ``width``, the largest number of units of an ``nn.RNN``
    with ``d`` inputs whose count does not exceed ``count``. Whole numbers of any type (int, float, numpy,
    one-element tensor). Building a recurrent layer to count it is refused while the answer runs."""
    results = []
    with _also_refused(_recurrent_constructors()):
        for kind, d, h in cases:
            try:
                results.append(_call(answer, kind, d, h).value)
            except CheckFailed as failure:
                if "__init__, which this check does not allow" in str(failure):
                    raise CheckFailed(f"{failure}: count the parameters from the equations, without building a "
                                      "recurrent layer") from None
                raise
    for (kind, d, h), result in zip(cases, results):
        where = f"{kind}, d={d}, h={h}"
        if type(result) not in (tuple, list) or len(result) != 2:
            got = f"{len(result)} values" if type(result) in (tuple, list) else type(result).__name__
            raise CheckFailed(f"should return a pair (count, width), got {got}")
        count, width = (_number(value, f"the {what} for {where}", integral=True)
                        for value, what in zip(result, ("count", "width")))
        right = _layer_parameters(kind, d, h)
        if count != right:
            blocks = BLOCKS[kind]
            mistakes = {_layer_parameters(kind, d, h, biases=1): "one bias vector per block is d2l's scratch count; "
                        "PyTorch's layers keep two (bias_ih and bias_hh)",
                        _layer_parameters(kind, d, h, biases=0): "the biases are missing (two vectors of h per block)",
                        _layer_parameters(kind, d, h, hidden=False): "the hidden-to-hidden weights (h x h per block) "
                        "are missing"}
            for wrong_blocks in {1, 3, 4} - {blocks}:
                mistakes.setdefault(_layer_parameters(kind, d, h, blocks=wrong_blocks),
                                    f"that counts {wrong_blocks} block(s) of weights and biases; the {kind} cell has "
                                    f"{blocks} (RNN 1; GRU 3: update, reset, candidate; LSTM 4: input, forget, output, "
                                    "input node)")
            raise CheckFailed(f"for {where} the count is {count}, expected {right}"
                              + (f": {mistakes[count]}" if count in mistakes else ""))
        best = _rnn_width(d, right)
        if width != best:
            if width < 1:
                raise CheckFailed(f"for {where} the width is {width}: an nn.RNN needs at least one unit")
            own = _layer_parameters("RNN", d, width)
            if own > right:
                raise CheckFailed(f"for {where} an nn.RNN of {width} units has {own} parameters, more than {right}")
            wider = _layer_parameters("RNN", d, width + 1)
            raise CheckFailed(f"for {where} an nn.RNN of {width + 1} units still fits ({wider} <= {right} parameters): "
                              "return the largest width that does")
    layers = ", ".join(f"{kind} {d}x{h}" for kind, d, h in cases)
    return f"counts and matching widths right for {len(cases)} layers ({layers})"


CHECKS = {"gru_step": check_gru_step, "reset_only_step": check_reset_only_step,
          "update_only_step": check_update_only_step, "ideal_gate_schedule": check_ideal_gate_schedule,
          "gated_antisymmetric_step": check_gated_antisymmetric_step, "gru_classifier": check_gru_classifier,
          "gru_step_backward": check_gru_step_backward, "fused_reset_after_step": check_fused_reset_after_step,
          "hand_set_gates": check_hand_set_gates, "reset_after_gru_step": check_reset_after_gru_step,
          "unpack_gru_weights": check_unpack_gru_weights, "text_perplexity": check_text_perplexity,
          "parameter_budget": check_parameter_budget}
