"""Autograded checks for the course's exercises: ``check(name, answer, **variation)``.

A graded cell of a chapter runs ``assert check("gru_step", gru_step)`` (nbgrader's hidden tests add other
shapes and seeds). Each check runs the student's answer on small random inputs and prints ONE line: ``✓ ...``
when it passed, or ``✗ ...`` saying what is wrong (not implemented yet, which shape, which gate, which
gradient, which time step); it returns True or False. An exception in the student's code is reported by
its type and message in that line, never as a traceback.

What keeps a check honest, inside the student's own Python process:

- ``check`` runs a fresh copy of this file, loaded from disk at every call: changing this module's objects
  in the notebook (``utils.checks._close = lambda a, b: True``) changes nothing that is graded;
- the answer receives plain parameters (tensors in a namespace, no ``step`` method), copies taken after the
  expected values were computed, so changing them changes nothing either;
- the expected values come from this file's own formulas, written from the equations, not from the course's
  implementations; and while the answer runs, those implementations refuse to run (a call to
  ``GRUScratch.step``, ``ideal_gate_schedule`` or ``GRUClassifier`` raises), so an answer cannot delegate;
- a NaN or an infinity is never close to anything.

What it cannot guarantee: code in the same process can always rewrite the grader itself (replace ``check``
in the notebook, or torch's functions); nbgrader shows every submission's code to the instructor.
"""
import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn

ATOL = 1e-6


class CheckFailed(Exception):
    """What is wrong with the student's code, in one line."""


# ------------------------------------------------------------------------------------------- the entry point

def check(name: str, answer, **variation) -> bool:
    """Run the check ``name`` (``'gru_step'``, ``'ideal_gate_schedule'``, ...) on ``answer`` with a fresh copy
    of this module loaded from disk; ``variation`` (``seed``, sizes) is what hidden tests change."""
    spec = importlib.util.spec_from_file_location("_course_checks", Path(__file__))
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    if name not in fresh.CHECKS:
        raise ValueError(f"no check {name!r}; the checks are {sorted(fresh.CHECKS)}")
    return fresh._run_check(name, lambda: fresh.CHECKS[name](answer, **variation))


def _run_check(name: str, body) -> bool:
    """Run ``body`` (returns the success detail or raises CheckFailed); print one line; return passed."""
    try:
        with torch.random.fork_rng():
            detail = body()
    except CheckFailed as failure:
        print(f"✗ {name}: {failure}")
        return False
    print(f"✓ {name}: {detail}")
    return True


# --------------------------------------------------------------- the course's references refuse while answers run

# (module, attribute path) of the course's implementations that an answer could delegate to
REFERENCES = [("utils.gru", "GRUScratch.step"), ("utils.gru", "GRUScratch.forward"), ("utils.gru", "GRUScratch.gates"),
              ("utils.gru_variants", "GRUVariant.step"), ("utils.fast_gru", "FastGRU.forward"),
              ("utils.antisymmetric", "AntisymmetricRNN.step"), ("utils.antisymmetric", "GatedAntisymmetricRNN.step"),
              ("utils.antisymmetric", "_AntisymmetricBase.forward"), ("utils.ideal_gates", "ideal_gate_schedule"),
              ("utils.classifier", "GRUClassifier.forward"), ("utils.classifier", "GRUClassifier.states"),
              ("utils.gru_backward", "step_backward"), ("utils.gru_backward", "bptt"),
              ("utils.fast_gru", "hand_backward_loop")]


def _refuse(*args, **kwargs):  # only builtins: its code runs with another module's globals
    raise PermissionError(f"the course's {__import__('sys')._getframe().f_code.co_name} refuses to run while an "
                          "answer is checked: write the exercise's code yourself")


@contextlib.contextmanager
def references_refuse():
    """While inside, every function of :data:`REFERENCES` raises PermissionError when called: methods are
    replaced on their class, module functions have their code swapped (which also stops references
    imported by name into a notebook)."""
    undo = []
    try:
        for module_name, path in REFERENCES:
            module = sys.modules.get(module_name)
            if module is None:  # never imported: nothing could call it without importing it now
                module = importlib.import_module(module_name)
            *owners, attribute = path.split(".")
            owner = module
            for part in owners:
                owner = getattr(owner, part)
            original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
            if isinstance(owner, type):
                refusing = types.FunctionType(_refuse.__code__.replace(co_name=path), {"__builtins__": __builtins__})
                setattr(owner, attribute, refusing)
                undo.append(lambda o=owner, a=attribute, v=original: setattr(o, a, v))
            else:
                code = original.__code__
                original.__code__ = _refuse.__code__.replace(co_name=path)
                undo.append(lambda f=original, c=code: setattr(f, "__code__", c))
        yield
    finally:
        for restore in reversed(undo):
            restore()


def _call(fn, *args):
    """Call the student's code with the references refusing; turn any exception into a one-line CheckFailed."""
    try:
        with references_refuse():
            return fn(*args)
    except NotImplementedError as error:
        hint = f" ({error})" if str(error) else ""
        raise CheckFailed(f"not implemented yet{hint}") from None
    except Exception as error:  # the student's bug, reported in one line
        raise CheckFailed(f"your code raised {type(error).__name__}: {error}") from None


# ----------------------------------------------------------------------------------------------- comparisons

def _tensor(value, what: str, expected_shape: tuple) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should be a tensor of shape {tuple(expected_shape)}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(expected_shape):
        raise CheckFailed(f"wrong shape for {what}: expected {tuple(expected_shape)}, got {tuple(value.shape)}")
    if not bool(torch.isfinite(value.detach()).all()):
        raise CheckFailed(f"{what} holds NaN or infinite values")
    return value.detach().double()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal within ATOL, and finite: a NaN or an infinity is never close to anything."""
    a, b = a.detach().double(), b.detach().double()
    return bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all()) and torch.allclose(a, b, atol=ATOL, rtol=0)


def _difference(got, want, what: str) -> str:
    diff = (got - want).abs()
    return (f"{what} differs from the expected values in {int((diff > ATOL).sum())} of {diff.numel()} entries "
            f"(largest difference {diff.max().item():.3g})")


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
    cases = _gru_mistakes(p, X, H, gates)  # computed before the answer sees any tensor
    params = types.SimpleNamespace(**{k: v.clone() for k, v in p.items()})
    with torch.no_grad():
        got = _tensor(_call(answer, params, X.clone(), H.clone()), "the returned H_new", (batch, num_hiddens))
    if _close(got, cases["expected"]):
        return f"{what} matches d2l's equations on a random batch (B={batch}, {num_inputs} inputs, {num_hiddens} units)"
    for description, value in cases.items():
        if description != "expected" and _close(got, value):
            raise CheckFailed(description)
    raise CheckFailed(_difference(got, cases["expected"], "H_new"))


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
    """Chapter 05: ``answer(seq_len, t_prime) -> (Z, R)``, each ``(seq_len, 1, 1)`` in [0, 1], such that from a
    zero initial state every ``H_t`` with ``t >= t'`` depends on ``x_{t'}`` alone. Checked by what the gates
    do: on a random GRU, perturbing any other input leaves those states exactly as they were, perturbing
    ``x_{t'}`` changes them. Both exact families pass (``R = 0`` at ``t'``; or ``Z = 1`` before ``t'``, which
    keeps the zero state, with ``R`` free at ``t'``)."""
    generator = torch.Generator().manual_seed(seed)
    for seq_len, t_prime in cases:
        result = _call(answer, seq_len, t_prime)
        if not isinstance(result, tuple) or len(result) != 2:
            raise CheckFailed(f"should return a pair (Z, R), got {type(result).__name__}")
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

def check_gated_antisymmetric_step(answer, *, seed=0, batch=5, input_size=3, hidden_size=4, epsilon=0.3,
                                   gamma=0.2) -> str:
    """Chapter 09: ``answer(cell, x (B, input), h (B, hidden)) -> h_new``: ``r = A h + b_hh`` with
    ``A = W - W^T - gamma I``, ``z = sigmoid(W^z x + b^z + r)``, ``h_new = h + epsilon z tanh(W^h x + b^h + r)``.
    ``cell`` holds ``weight_ih`` (gate rows first), ``bias_ih``, ``weight_hh``, ``bias_hh``, ``epsilon``,
    ``gamma`` and ``recurrent_matrix()``."""
    generator = torch.Generator().manual_seed(seed)
    W_ih, b_ih = _random(generator, 2 * hidden_size, input_size), _random(generator, 2 * hidden_size, scale=0.5)
    W_hh, b_hh = _random(generator, hidden_size, hidden_size), _random(generator, hidden_size, scale=0.5)
    x, h = _random(generator, batch, input_size), _random(generator, batch, hidden_size)
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
    copies = {"weight_ih": W_ih.clone(), "bias_ih": b_ih.clone(), "weight_hh": W_hh.clone(), "bias_hh": b_hh.clone()}
    cell = types.SimpleNamespace(**copies, epsilon=epsilon, gamma=gamma, input_size=input_size, hidden_size=hidden_size,
                                 recurrent_matrix=lambda: copies["weight_hh"] - copies["weight_hh"].T
                                 - gamma * torch.eye(hidden_size, dtype=torch.float64))
    with torch.no_grad():
        got = _tensor(_call(answer, cell, x.clone(), h.clone()), "the returned h_new", (batch, hidden_size))
    if _close(got, cases["expected"]):
        return f"your step matches the gated antisymmetric cell's equations on a random batch (B={batch})"
    for description, value in cases.items():
        if description != "expected" and _close(got, value):
            raise CheckFailed(description)
    raise CheckFailed(_difference(got, cases["expected"], "h_new"))


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


def check_gru_classifier(answer, *, seed=0, batch=4, steps=6, input_size=3, hidden_size=5, num_classes=7) -> str:
    """Chapter 12: ``answer(cell, num_classes)`` builds a model with ``cell`` and a ``head``
    ``nn.Linear(hidden_size, num_classes)``; its forward maps ``X`` of shape ``(B, T, input_size)`` to logits
    ``(B, num_classes)`` from each example's state after the last step (a zero initial state)."""
    torch.manual_seed(seed)
    cell = _ConcatCell(input_size, hidden_size).double()
    X = _random(torch.Generator().manual_seed(seed), batch, steps, input_size)
    with torch.no_grad():
        states, h = [], torch.zeros(batch, hidden_size, dtype=torch.float64)
        for t in range(steps):
            h = cell(X[:, t], h)
            states.append(h)
    model = _call(answer, cell, num_classes)
    head = getattr(model, "head", None)
    if not isinstance(model, nn.Module) or not isinstance(head, nn.Linear) or (
            head.in_features, head.out_features) != (hidden_size, num_classes):
        raise CheckFailed(f"the model needs a head nn.Linear({hidden_size}, {num_classes}) in self.head")
    model.double()
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    logits = lambda state: state @ weight.T + bias
    with torch.no_grad():
        got = _tensor(_call(model, X.clone()), "the logits", (batch, num_classes))
    if _close(got, logits(states[-1])):
        return f"logits of shape {(batch, num_classes)} from each example's last state (B={batch}, T={steps})"
    for t in range(steps - 1):
        if _close(got, logits(states[t])):
            raise CheckFailed(f"the logits come from the state after step {t}; use the last step (t = T-1 = {steps - 1})")
    if _close(got, logits(states[-1][-1]).expand(batch, num_classes)):
        raise CheckFailed("every row holds the last example's logits: states[-1] indexes the batch; take the last time "
                          "step of every example")
    raise CheckFailed(_difference(got, logits(states[-1]), "the logits"))


# ------------------------------------------------------------- one step's backward by hand (chapter 10)

GRADIENT_NAMES = ("dZ", "dH_tilde", "da_h", "da_z", "dR", "da_r", "dH", "dX",
                  "dW_xz", "dW_hz", "db_z", "dW_xr", "dW_hr", "db_r", "dW_xh", "dW_hh", "db_h")


def check_gru_step_backward(answer, *, seed=0, batch=5, num_inputs=3, num_hiddens=4) -> str:
    """Chapter 10: ``answer(p, cache, dH_new) -> dict`` of the gradients of one reset-before GRU step:
    ``p`` holds the parameters, ``cache`` the step's ``X``, ``H``, ``Z``, ``R``, ``H_tilde``, ``RH`` and
    ``H_new``. Every gradient of :data:`GRADIENT_NAMES` is compared with autograd's; the first wrong one is
    named."""
    generator = torch.Generator().manual_seed(seed)
    p = _gru_params(generator, num_inputs, num_hiddens, ("z", "r"))
    X, H, dH_new = (_random(generator, batch, n) for n in (num_inputs, num_hiddens, num_hiddens))
    leaves = {k: v.clone().requires_grad_() for k, v in {**p, "X": X, "H": H}.items()}
    with torch.enable_grad():
        a_z = leaves["X"] @ leaves["W_xz"] + leaves["H"] @ leaves["W_hz"] + leaves["b_z"]
        a_r = leaves["X"] @ leaves["W_xr"] + leaves["H"] @ leaves["W_hr"] + leaves["b_r"]
        Z, R = torch.sigmoid(a_z), torch.sigmoid(a_r)
        RH = R * leaves["H"]
        a_h = leaves["X"] @ leaves["W_xh"] + RH @ leaves["W_hh"] + leaves["b_h"]
        H_tilde = torch.tanh(a_h)
        H_new = Z * leaves["H"] + (1 - Z) * H_tilde
        inner = [Z, H_tilde, a_h, a_z, R, a_r]
        names = ["dZ", "dH_tilde", "da_h", "da_z", "dR", "da_r"]
        for tensor in inner:
            tensor.retain_grad()
        H_new.backward(dH_new)
    expected = {name: t.grad for name, t in zip(names, inner)}
    expected.update({f"d{k}": v.grad for k, v in leaves.items()})
    cache = {"X": X.clone(), "H": H.clone(), "Z": Z.detach().clone(), "R": R.detach().clone(),
             "H_tilde": H_tilde.detach().clone(), "RH": RH.detach().clone(), "H_new": H_new.detach().clone()}
    with torch.no_grad():
        got = _call(answer, {k: v.clone() for k, v in p.items()}, cache, dH_new.clone())
    if not isinstance(got, dict):
        raise CheckFailed(f"should return a dict of gradients, got {type(got).__name__}")
    missing = [name for name in GRADIENT_NAMES if name not in got]
    if missing:
        raise CheckFailed(f"the dict lacks {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
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

class _CountProducts(torch.overrides.TorchFunctionMode):
    """Counts the matrix products called while active."""

    PRODUCTS = {torch.matmul, torch.mm, torch.addmm, torch.bmm, torch.baddbmm, torch.einsum, torch.tensordot,
                torch.nn.functional.linear, torch.Tensor.matmul, torch.Tensor.mm, torch.Tensor.__matmul__,
                torch.Tensor.__rmatmul__, torch.Tensor.addmm}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in self.PRODUCTS
        return func(*args, **(kwargs or {}))


def check_fused_reset_after_step(answer, *, seed=0, batch=5, num_hiddens=4) -> str:
    """Chapter 11: ``answer(XW_t, H, W_h, b_hh) -> H_new``: one step of the reset-after GRU from the input
    projections ``XW_t`` ``(B, 3h)`` (biases included, columns ``[z | r | n]``), the state ``H`` ``(B, h)``, the
    fused hidden weights ``W_h`` ``(h, 3h)`` and the candidate's hidden bias ``b_hh`` ``(h,)``, with ONE matrix
    product: ``Z, R = sigmoid(XW_z,r + H W_h,zr)``, ``H~ = tanh(XW_n + R * (H W_h,n + b_hh))``."""
    generator = torch.Generator().manual_seed(seed)
    h = num_hiddens
    XW, H, W_h, b_hh = (_random(generator, batch, 3 * h), _random(generator, batch, h), _random(generator, h, 3 * h),
                        _random(generator, h, scale=0.5))
    HW = H @ W_h
    Z, R = torch.sigmoid(XW[:, :2 * h] + HW[:, :2 * h]).chunk(2, dim=1)
    cases = {"expected": Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (HW[:, 2 * h:] + b_hh)),
             "the reset gate is applied before the matmul (d2l's form); this step resets after it: R * (H W_hn + b_hh)":
                 Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + (R * H) @ W_h[:, 2 * h:] + b_hh),
             "b_hh is added outside the reset: it belongs inside, R * (H W_hn + b_hh)":
                 Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * HW[:, 2 * h:] + b_hh),
             "the columns are read as [r | z | n]; the course's fused layout is [z | r | n]":
                 R * H + (1 - R) * torch.tanh(XW[:, 2 * h:] + Z * (HW[:, 2 * h:] + b_hh))}
    counter = _CountProducts()
    with torch.no_grad(), counter:
        got = _call(answer, XW.clone(), H.clone(), W_h.clone(), b_hh.clone())
    got = _tensor(got, "the returned H_new", (batch, h))
    if not _close(got, cases["expected"]):
        for description, value in cases.items():
            if description != "expected" and _close(got, value):
                raise CheckFailed(description)
        raise CheckFailed(_difference(got, cases["expected"], "H_new"))
    if counter.count != 1:
        raise CheckFailed(f"the values are right, but your step made {counter.count} matrix products; compute "
                          "H @ W_h once and split its columns")
    return f"H_new is right, with one matrix product (B={batch}, h={h})"


CHECKS = {"gru_step": check_gru_step, "reset_only_step": check_reset_only_step,
          "update_only_step": check_update_only_step, "ideal_gate_schedule": check_ideal_gate_schedule,
          "gated_antisymmetric_step": check_gated_antisymmetric_step, "gru_classifier": check_gru_classifier,
          "gru_step_backward": check_gru_step_backward, "fused_reset_after_step": check_fused_reset_after_step}
