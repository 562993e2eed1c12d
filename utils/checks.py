"""Autograded checks for the course's exercises: one function per exercise.

Each ``check_*`` runs the student's code against the course's reference implementation on small random
inputs (inside :func:`torch.random.fork_rng`, so the notebook's random state is untouched), prints ONE line
(``✓ ...`` when it passed, ``✗ ...`` saying what is wrong: not implemented yet, which shape, which gate or
time step), and returns True or False. An exception raised by the student's code is reported by its type
and message in that line, never as a traceback.
"""
from typing import Callable

import torch
from torch import nn

from utils.antisymmetric import GatedAntisymmetricRNN
from utils.blog_cells import ConcatGRUCell
from utils.classifier import GRUClassifier
from utils.gru import GRUScratch
from utils.ideal_gates import ideal_gate_schedule

ATOL = 1e-6


class CheckFailed(Exception):
    """What is wrong with the student's code, in one line."""


def _run_check(name: str, body: Callable[[], str]) -> bool:
    """Run ``body`` (returns the success detail or raises CheckFailed); print one line; return passed."""
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            detail = body()
    except CheckFailed as failure:
        print(f"✗ {name}: {failure}")
        return False
    print(f"✓ {name}: {detail}")
    return True


def _call(fn, *args):
    """Call the student's code; turn any exception into a one-line CheckFailed."""
    try:
        return fn(*args)
    except NotImplementedError as error:
        hint = f" ({error})" if str(error) else ""
        raise CheckFailed(f"not implemented yet{hint}") from None
    except Exception as error:  # the student's bug, reported in one line
        raise CheckFailed(f"your code raised {type(error).__name__}: {error}") from None


def _tensor(value, what: str, expected_shape: tuple) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should be a tensor of shape {expected_shape}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(expected_shape):
        raise CheckFailed(f"wrong shape for {what}: expected {tuple(expected_shape)}, got {tuple(value.shape)}")
    return value


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a.detach().double(), b.detach().double(), atol=ATOL, rtol=0)


def _first_known_mistake(got: torch.Tensor, mistakes: dict[str, torch.Tensor]) -> str:
    """The description of the first wrong formula that ``got`` reproduces, or a generic difference."""
    for description, value in mistakes.items():
        if description != "expected" and _close(got, value):
            return description
    diff = (got.detach().double() - mistakes["expected"].double()).abs()
    return (f"H_new differs from the reference in {int((diff > ATOL).sum())} of {diff.numel()} entries "
            f"(largest difference {diff.max().item():.3g})")


def _random_gru(num_inputs: int, num_hiddens: int, **switches) -> GRUScratch:
    """A float64 GRUScratch with visible weights and nonzero biases (so a forgotten bias shows)."""
    gru = GRUScratch(num_inputs, num_hiddens, sigma=0.5, **switches).double()
    with torch.no_grad():
        for name, param in gru.named_parameters():
            if name.startswith("b_"):
                param.normal_(0, 0.5)
    return gru


def _gru_mistakes(gru: GRUScratch, X, H) -> dict[str, torch.Tensor]:
    """The reference H_new under "expected", then H_new for common mistakes in d2l's GRU step."""
    ref = gru.step(X, H)
    sig = torch.sigmoid
    mistakes = {"expected": ref.H}
    if gru.update_gate:
        new = ref.H_tilde
        mistakes["the update gate is used the other way round: H_new = (1 - Z) * H + Z * H_tilde, "
                  "d2l's convention is H_new = Z * H + (1 - Z) * H_tilde"] = (1 - ref.Z) * H + ref.Z * new
        mistakes["the update gate is missing: H_new equals the candidate H_tilde"] = new
    if gru.reset_gate:
        no_reset = torch.tanh(X @ gru.W_xh + H @ gru.W_hh + gru.b_h)
        after = torch.tanh(X @ gru.W_xh + ref.R * (H @ gru.W_hh) + gru.b_h)
        Z = ref.Z if gru.update_gate else None
        for text, candidate in (("the reset gate is not applied: the candidate should use (R * H) @ W_hh",
                                 no_reset),
                                ("the reset gate multiplies H @ W_hh; d2l's candidate uses (R * H) @ W_hh",
                                 after)):
            mistakes[text] = candidate if Z is None else Z * H + (1 - Z) * candidate
    if gru.update_gate and gru.reset_gate:
        Z_swapped = sig(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
        R_swapped = sig(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
        cand = torch.tanh(X @ gru.W_xh + (R_swapped * H) @ gru.W_hh + gru.b_h)
        mistakes["the gates are swapped: Z uses W_xz, W_hz, b_z and R uses W_xr, W_hr, b_r"] = (
            Z_swapped * H + (1 - Z_swapped) * cand)
    return mistakes


def _check_gru_like_step(fn, switches: dict, what: str) -> str:
    gru = _random_gru(3, 4, **switches)
    X, H = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        got = _tensor(_call(fn, gru, X, H), "the returned H_new", (5, 4))
        mistakes = _gru_mistakes(gru, X, H)
        if not _close(got, mistakes["expected"]):
            raise CheckFailed(_first_known_mistake(got, mistakes))
    options = "".join(f", {key}={value}" for key, value in switches.items())
    return f"{what} matches GRUScratch(3, 4{options}).step on a random batch of 5"


def check_gru_step(fn) -> bool:
    """Chapter 03: ``fn(gru, X (B, in), H (B, h)) -> H_new (B, h)`` must equal ``gru.step(X, H).H``."""
    return _run_check("gru_step", lambda: _check_gru_like_step(fn, {}, "your step"))


def check_reset_only_step(fn) -> bool:
    """Chapter 08: ``fn(gru, X, H) -> H_new`` for ``GRUScratch(..., update_gate=False)`` (no Z)."""
    return _run_check("reset_only_step", lambda: _check_gru_like_step(
        fn, {"update_gate": False}, "your reset-only step"))


def check_update_only_step(fn) -> bool:
    """Chapter 08: ``fn(gru, X, H) -> H_new`` for ``GRUScratch(..., reset_gate=False)`` (no R)."""
    return _run_check("update_only_step", lambda: _check_gru_like_step(
        fn, {"reset_gate": False}, "your update-only step"))


def check_ideal_gate_schedule(fn) -> bool:
    """Chapter 05: ``fn(seq_len, t_prime) -> (Z, R)``, each of shape ``(seq_len, 1, 1)``; must equal
    :func:`utils.ideal_gates.ideal_gate_schedule` wherever the value matters (free entries may be anything
    in [0, 1])."""
    def body():
        cases = [(8, 3), (5, 0), (6, 4)]
        for seq_len, t_prime in cases:
            result = _call(fn, seq_len, t_prime)
            if not isinstance(result, tuple) or len(result) != 2:
                raise CheckFailed(f"should return a pair (Z, R), got {type(result).__name__}")
            ref = ideal_gate_schedule(seq_len, t_prime)
            for name, got, want, free in (("Z", result[0], ref.Z, ref.Z_free), ("R", result[1], ref.R, ref.R_free)):
                got = _tensor(got, name, (seq_len, 1, 1)).detach().double()
                if ((got < 0) | (got > 1)).any():
                    raise CheckFailed(f"{name} must lie in [0, 1] (a sigmoid's range), got {got.flatten().tolist()}")
                for t in range(seq_len):
                    if not free[t] and abs(got[t].item() - want[t].item()) > ATOL:
                        where = "t'" if t == t_prime else ("after t'" if t > t_prime else "before t'")
                        raise CheckFailed(f"{name} at step {t} ({where}, seq_len={seq_len}, t'={t_prime}) "
                                          f"should be {want[t].item():g}, got {got[t].item():g}")
        return f"Z and R match the ideal schedule at every step that matters ({len(cases)} cases)"
    return _run_check("ideal_gate_schedule", body)


def check_gated_antisymmetric_step(fn) -> bool:
    """Chapter 09: ``fn(cell, x (B, in), h (B, hidden)) -> h_new`` must equal ``cell.step(x, h)`` for a
    :class:`utils.antisymmetric.GatedAntisymmetricRNN`."""
    def body():
        cell = GatedAntisymmetricRNN(3, 4, epsilon=0.3, gamma=0.2).double()
        with torch.no_grad():
            for bias in (cell.bias_ih, cell.bias_hh):
                bias.normal_(0, 0.5)
        x, h = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
        with torch.no_grad():
            got = _tensor(_call(fn, cell, x, h), "the returned h_new", (5, 4))
            want = cell.step(x, h)
            if _close(got, want):
                return "your step matches GatedAntisymmetricRNN.step on a random batch (B=5, 3 inputs, 4 units)"
            gate_in, candidate_in = cell.input_projection(x).chunk(2, dim=-1)
            A = cell.recurrent_matrix()
            r = cell.recurrent_projection(h, A)
            z = torch.sigmoid(gate_in + r)
            mistakes = {
                "the gate and the candidate are swapped: weight_ih's first block is the gate's W^z, "
                "the second the candidate's W^h": h + cell.epsilon * torch.sigmoid(candidate_in + r)
                * torch.tanh(gate_in + r),
                "the gate z is missing: h_new = h + epsilon * z * tanh(...)": h + cell.epsilon
                * torch.tanh(candidate_in + r),
                "epsilon is missing: h_new = h + epsilon * z * tanh(...)": h + z * torch.tanh(candidate_in + r),
                "the old state h is not added: the step is h_new = h + epsilon * z * tanh(...)": cell.epsilon
                * z * torch.tanh(candidate_in + r),
                "the recurrent matrix is used without antisymmetry: use cell.recurrent_matrix() "
                "(A = W - W^T - gamma I)": h + cell.epsilon * torch.sigmoid(gate_in + h @ cell.weight_hh.T
                + cell.bias_hh) * torch.tanh(candidate_in + h @ cell.weight_hh.T + cell.bias_hh),
                "the recurrent matrix is applied as h @ A; the cell computes A h, i.e. h @ A.T": h + cell.epsilon
                * torch.sigmoid(gate_in + h @ A + cell.bias_hh) * torch.tanh(candidate_in + h @ A + cell.bias_hh),
            }
            for description, value in mistakes.items():
                if _close(got, value):
                    raise CheckFailed(description)
            diff = (got - want).abs()
            raise CheckFailed(f"h_new differs from the reference in {int((diff > ATOL).sum())} of "
                              f"{diff.numel()} entries (largest difference {diff.max().item():.3g})")
    return _run_check("gated_antisymmetric_step", body)


def check_gru_classifier(cls) -> bool:
    """Chapter 11: ``cls(cell, num_classes)`` with attributes ``cell`` and ``head`` whose forward maps
    ``X`` of shape ``(B, T, input_size)`` to logits ``(B, num_classes)`` from the state after the last
    step, like :class:`utils.classifier.GRUClassifier`."""
    def body():
        B, T, num_inputs, hidden, num_classes = 4, 6, 3, 5, 7
        cell = ConcatGRUCell(num_inputs, hidden)
        model = _call(cls, cell, num_classes)
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Linear) or (head.in_features, head.out_features) != (hidden, num_classes):
            raise CheckFailed(f"the model needs a head nn.Linear({hidden}, {num_classes}) in self.head")
        reference = GRUClassifier(cell, num_classes)
        reference.head.load_state_dict(head.state_dict())
        X = torch.randn(B, T, num_inputs)
        with torch.no_grad():
            got = _tensor(_call(model, X), "the logits", (B, num_classes))
            want = reference(X)
            if _close(got, want):
                return (f"logits of shape {(B, num_classes)} from the last step's state, equal to "
                        f"GRUClassifier on a random batch (B={B}, T={T})")
            states = reference.states(X)
            for t in range(T - 1):
                if _close(got, reference.head(states[:, t])):
                    raise CheckFailed(f"the logits come from the state after step {t}; use the last step "
                                      f"(t = T-1 = {T - 1})")
            if _close(got, reference.head(states[-1, -1]).expand(B, num_classes)):
                raise CheckFailed("every row holds the last example's logits: states[-1] indexes the batch; "
                                  "take states[:, -1] (the last time step of every example)")
            diff = (got - want).abs()
            raise CheckFailed(f"the logits differ from the reference in {int((diff > ATOL).sum())} of "
                              f"{diff.numel()} entries (largest difference {diff.max().item():.3g})")
    return _run_check("gru_classifier", body)
