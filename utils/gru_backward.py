"""Backpropagation through a GRU, by hand: one step's backward equations, the step Jacobian, and
backpropagation through time over a sequence (truncated too). :mod:`utils.fast_gru` turns the same
equations into a fast GRU whose weight gradients of all steps are one matrix product after the loop.

Notation is d2l's, with row vectors: for a minibatch ``X`` of shape ``(B, num_inputs)`` and the state ``H``
of shape ``(B, h)``, the reset-before step (d2l) is::

    a_z = X W_xz + H W_hz + b_z,   Z = sigmoid(a_z)
    a_r = X W_xr + H W_hr + b_r,   R = sigmoid(a_r)
    a_h = X W_xh + (R * H) W_hh + b_h,   H~ = tanh(a_h)
    H'  = Z * H + (1 - Z) * H~

and the reset-after step (``nn.GRU``) replaces the candidate's pre-activation by
``a_h = X W_xh + b_h + R * (H W_hh + b_hh)``. Given ``dH'`` (the gradient of the loss with respect to
``H'``, same shape), the chain rule gives, from the last equation back to the first::

    dZ  = dH' * (H - H~)                 dH~ = dH' * (1 - Z)
    da_h = dH~ * (1 - H~**2)             da_z = dZ * Z * (1 - Z)
    reset-before: d(R*H) = da_h W_hh^T,  dR = d(R*H) * H,   dW_hh = (R * H)^T da_h
    reset-after:  dg = da_h * R (g = H W_hh + b_hh),  dR = da_h * g,  dW_hh = H^T dg,  db_hh = sum(dg)
    da_r = dR * R * (1 - R)
    dH  = dH' * Z + da_z W_hz^T + da_r W_hr^T + (d(R*H) * R  |  dg W_hh^T)
    dW_x* = X^T da_*,  dW_hz = H^T da_z,  dW_hr = H^T da_r,  db_* = sum over the batch of da_*
    dX  = da_z W_xz^T + da_r W_xr^T + da_h W_xh^T

The functions here take the parameters as a dict with d2l's names (``W_xz``, ..., ``b_hh``), so they can be
checked against autograd on any :class:`utils.gru.GRUScratch` (``params(gru)``).
"""
import torch

from utils.gru import GRUScratch
from utils.shapes import check_sequence, check_sizes, check_state, check_switches, check_tensor

NAMES = ("W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h")  # plus "b_hh" reset-after


def params(gru) -> dict:
    """The parameters of a :class:`utils.gru.GRUScratch` with both gates as a dict ``name -> tensor``."""
    if type(gru) is not GRUScratch:
        raise TypeError(f"params expects a plain utils.gru.GRUScratch (d2l's gates), got {type(gru).__name__}")
    if not (gru.reset_gate and gru.update_gate):
        raise ValueError(f"params needs a GRUScratch with both gates, got reset_gate={gru.reset_gate}, "
                         f"update_gate={gru.update_gate}")
    names = list(NAMES) + (["b_hh"] if gru.reset_after else [])
    return {name: getattr(gru, name) for name in names}


def check_params(name: str, p, *, reset_after) -> tuple[int, int]:
    """``p`` must hold d2l's parameters (``b_hh`` too when ``reset_after``), ``W_x*`` ``(num_inputs, h)``,
    ``W_h*`` ``(h, h)``, ``b_*`` ``(h,)``, all in the dtype and on the device of ``W_xh``; return
    ``(num_inputs, h)``."""
    check_switches(name, reset_after=reset_after)
    names = NAMES + (("b_hh",) if reset_after else ())
    if not isinstance(p, dict) or not set(names) <= set(p):
        got = sorted(p) if isinstance(p, dict) else type(p).__name__
        raise ValueError(f"{name} expects p, a dict with the parameters {', '.join(names)} (params(gru) makes it), "
                         f"got {got}")
    W_xh = p["W_xh"]
    if not isinstance(W_xh, torch.Tensor) or W_xh.dim() != 2:
        got = tuple(W_xh.shape) if isinstance(W_xh, torch.Tensor) else type(W_xh).__name__
        raise ValueError(f"{name} expects W_xh of shape (num_inputs, h), got {got}")
    num_inputs, h = W_xh.shape
    for key in names:
        shape = (num_inputs, h) if key.startswith("W_x") else (h, h) if key.startswith("W_h") else (h,)
        check_tensor(name, key, p[key], shape, W_xh)
    return num_inputs, h


def step_forward(p: dict, X, H, *, reset_after: bool) -> dict:
    """One GRU step that keeps what backward needs: ``Z``, ``R``, ``H_tilde``, the reset product ``RH``
    (reset-before) or ``g = H W_hh + b_hh`` (reset-after), and the new state ``H_new``; each ``(B, h)``."""
    _check_step_forward(p, X, H, reset_after)
    Z = torch.sigmoid(X @ p["W_xz"] + H @ p["W_hz"] + p["b_z"])
    R = torch.sigmoid(X @ p["W_xr"] + H @ p["W_hr"] + p["b_r"])
    if reset_after:
        g = H @ p["W_hh"] + p["b_hh"]
        H_tilde = torch.tanh(X @ p["W_xh"] + p["b_h"] + R * g)
        saved = {"g": g}
    else:
        RH = R * H
        H_tilde = torch.tanh(X @ p["W_xh"] + RH @ p["W_hh"] + p["b_h"])
        saved = {"RH": RH}
    return {"X": X, "H": H, "Z": Z, "R": R, "H_tilde": H_tilde, "H_new": Z * H + (1 - Z) * H_tilde, **saved}


def step_backward(p: dict, cache: dict, dH_new, *, reset_after: bool) -> dict:
    """The gradients of one step from ``dH_new`` (shape ``(B, h)``) and the ``cache`` of :func:`step_forward`:
    the intermediate ones (``dZ``, ``dH_tilde``, ``da_h``, ``da_z``, ``dR``, ``da_r``), the input's and the
    old state's (``dX``, ``dH``) and every parameter's (``dW_xz``, ..., ``db_h``, and ``db_hh``
    reset-after), following the equations of the module docstring."""
    check_params("step_backward", p, reset_after=reset_after)
    check_tensor("step_backward", "dH_new", dH_new, tuple(cache["H"].shape), p["W_xh"])
    X, H, Z, R, H_tilde = cache["X"], cache["H"], cache["Z"], cache["R"], cache["H_tilde"]
    g = {"dZ": dH_new * (H - H_tilde), "dH_tilde": dH_new * (1 - Z)}
    g["da_h"] = g["dH_tilde"] * (1 - H_tilde ** 2)
    g["da_z"] = g["dZ"] * Z * (1 - Z)
    if reset_after:
        dg = g["da_h"] * R
        g["dR"] = g["da_h"] * cache["g"]
        g["dW_hh"], g["db_hh"] = H.T @ dg, dg.sum(0)
        through_candidate = dg @ p["W_hh"].T
    else:
        dRH = g["da_h"] @ p["W_hh"].T
        g["dR"] = dRH * H
        g["dW_hh"] = cache["RH"].T @ g["da_h"]
        through_candidate = dRH * R
    g["da_r"] = g["dR"] * R * (1 - R)
    g["dH"] = dH_new * Z + g["da_z"] @ p["W_hz"].T + g["da_r"] @ p["W_hr"].T + through_candidate
    for gate, da in (("z", g["da_z"]), ("r", g["da_r"]), ("h", g["da_h"])):
        g[f"dW_x{gate}"], g[f"db_{gate}"] = X.T @ da, da.sum(0)
    g["dW_hz"], g["dW_hr"] = H.T @ g["da_z"], H.T @ g["da_r"]
    g["dX"] = g["da_z"] @ p["W_xz"].T + g["da_r"] @ p["W_xr"].T + g["da_h"] @ p["W_xh"].T
    return g


def step_jacobian(p: dict, cache: dict, *, reset_after: bool) -> torch.Tensor:
    """``dH_new / dH`` of one step for every example: shape ``(B, h, h)`` with entry ``[b, i, j] =
    dH_new[b, i] / dH[b, j]``. The sum of an additive path ``diag(Z)`` and the paths through the update gate,
    the reset gate and the candidate::

        J = diag(Z) + diag((H - H~) Z (1 - Z)) W_hz^T + diag((1 - Z)(1 - H~^2)) C,
        C = W_hh^T diag(R) + W_hh^T diag(H R (1 - R)) W_hr^T       (reset-before)
        C = diag(R) W_hh^T + diag(g R (1 - R)) W_hr^T              (reset-after)
    """
    check_params("step_jacobian", p, reset_after=reset_after)
    H, Z, R, H_tilde = cache["H"], cache["Z"], cache["R"], cache["H_tilde"]
    diag = torch.diag_embed
    W_hz, W_hr, W_hh = p["W_hz"].T, p["W_hr"].T, p["W_hh"].T  # column convention: (h_out, h_in)
    if reset_after:
        C = diag(R) @ W_hh + diag(cache["g"] * R * (1 - R)) @ W_hr
    else:
        C = W_hh @ diag(R) + W_hh @ diag(H * R * (1 - R)) @ W_hr
    return diag(Z) + diag((H - H_tilde) * Z * (1 - Z)) @ W_hz + diag((1 - Z) * (1 - H_tilde ** 2)) @ C


def bptt(p: dict, inputs, H0, grad_outputs, *, reset_after: bool, truncate: int | None = None) -> dict:
    """Backpropagation through time over ``inputs`` of shape ``(T, B, num_inputs)`` from ``H0``, for the loss
    ``sum(outputs * grad_outputs)`` (``grad_outputs`` of shape ``(T, B, h)``): the forward loop keeps each
    step's cache, the backward loop runs :func:`step_backward` from the last step to the first, carrying
    ``dH`` and adding each step's parameter gradients. ``truncate=k`` stops carrying ``dH`` further back than
    ``k`` steps before each output: the sequence is cut into windows of ``k`` steps and no gradient flows from
    one window into the one before, which is what ``H.detach()`` does between consecutive minibatches. Returns the parameter gradients, ``dX`` ``(T, B, num_inputs)`` and ``dH0``."""
    _check_bptt(p, inputs, H0, grad_outputs, reset_after, truncate)
    caches, H = [], H0
    for X in inputs:
        caches.append(step_forward(p, X, H, reset_after=reset_after))
        H = caches[-1]["H_new"]
    grads = {f"d{name}": torch.zeros_like(value) for name, value in p.items()}
    dX, dH = [None] * len(caches), torch.zeros_like(H0)
    T = len(caches)
    for t in range(T - 1, -1, -1):
        if truncate is not None and (t + 1) % truncate == 0 and t + 1 < T:
            dH = torch.zeros_like(dH)  # the state after step t entered the next window detached
        step = step_backward(p, caches[t], dH + grad_outputs[t], reset_after=reset_after)
        for name in grads:
            grads[name] += step[name]
        dX[t], dH = step["dX"], step["dH"]
    return {**grads, "dX": torch.stack(dX), "dH0": dH}


def _check_step_forward(p, X, H, reset_after) -> None:
    """The arguments of :func:`step_forward`: the parameters, one time step ``X`` ``(B, num_inputs)`` and the
    state ``H`` ``(B, h)``."""
    num_inputs, h = check_params("step_forward", p, reset_after=reset_after)
    if not isinstance(X, torch.Tensor) or X.dim() != 2:
        got = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"step_forward expects one time step X of shape (B, {num_inputs}), got {got}; bptt runs "
                         "a whole sequence")
    check_tensor("step_forward", "X", X, (X.shape[0], num_inputs), p["W_xh"])
    check_state("step_forward", H, X.shape[0], h, p["W_xh"])


def _check_bptt(p, inputs, H0, grad_outputs, reset_after, truncate) -> None:
    """The arguments of :func:`bptt`: the parameters, ``inputs`` ``(T, B, num_inputs)`` with ``T, B >= 1``,
    ``H0`` ``(B, h)``, ``grad_outputs`` ``(T, B, h)``, and ``truncate`` None or a positive int."""
    num_inputs, h = check_params("bptt", p, reset_after=reset_after)
    T, B = check_sequence("bptt", inputs, num_inputs, p["W_xh"])
    check_state("bptt", H0, B, h, p["W_xh"], label="H0")
    check_tensor("bptt", "grad_outputs", grad_outputs, (T, B, h), p["W_xh"])
    if truncate is not None:
        check_sizes("bptt", truncate=truncate)
