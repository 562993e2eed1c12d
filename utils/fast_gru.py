"""``FastGRU``: d2l's from-scratch GRU made fast, one optimisation step at a time.

All steps compute d2l's GRU (``H = Z*H + (1-Z)*H~``, see :mod:`utils.gru`) from the same fused
parameters: ``W_x`` of shape ``(num_inputs, 3h)`` and ``W_h`` of shape ``(h, 3h)`` hold the update
gate, reset gate and candidate columns side by side (``[z | r | h]``), ``b`` of shape ``(3h,)`` their
biases, and ``b_hh`` of shape ``(h,)`` the hidden candidate bias of the reset-after formulation.
The steps, each on top of the previous one (``FastGRU(..., step=name)``):

- ``'indexed'``: the input projections ``X_t W_x + b`` of all ``T`` steps in one matmul before the loop,
  read inside the loop as ``XW[t]``. A trap: the backward of ``XW[t]`` allocates a zero tensor of the
  full ``(T, B, 3h)`` shape and writes one slice into it, at every step, so backward does ``O(T^2)`` work.
- ``'hoisted'``: the same, with the projections split once before the loop (``XW.unbind(0)``): one
  backward node that stacks the ``T`` slice gradients once.
- ``'fused'``: the hidden weights of both gates in one matmul per step (2 hidden matmuls, not 3).
- ``'reset_after'``: ``nn.GRU``'s formulation (``H~ = tanh(X W_xh + b_h + R*(H W_hh + b_hh))``): all
  hidden weights in one matmul per step. It equals ``GRUScratch(reset_after=True)`` and ``nn.GRU``.
- ``'jit'``: the reset-after forward compiled by ``torch.jit.script`` (no Python per step).
- ``'compile'``: the reset-after forward compiled by ``torch.compile`` (fused C++ kernels for the
  elementwise work of each step, forward and backward); its cache goes under ``build/``.
- ``'backward'``: the backward pass written by hand (:class:`HandBackwardGRU`, the equations of
  :mod:`utils.gru_backward`): per step one matmul forward and one backward, and the hidden weights'
  gradients of all ``T`` steps in one ``(h, T*B) @ (T*B, 3h)`` matmul after the loop, where autograd
  (``nn.GRU`` on a CPU included) takes one per step.
- ``'backward_compile'``: the same with both loops compiled by ``torch.compile`` (the elementwise work of
  each step fused into one kernel; the first call at a new sequence length compiles for about a minute,
  later calls and later processes read the cache under ``build/``).

The steps up to ``'compile'`` leave the backward pass to autograd; only the last two replace it.
"""
import functools
import os
import warnings

import torch
from torch import nn

from utils.gru import GRUScratch
from utils.paths import build_dir
from utils.shapes import (check_non_negative_numbers, check_sequence, check_sizes, check_state, check_switches,
                          check_tensor, initial_state)

STEPS = ("indexed", "hoisted", "fused", "reset_after", "jit", "compile", "backward", "backward_compile")
RESET_AFTER_STEPS = ("reset_after", "jit", "compile", "backward", "backward_compile")
HAND_BACKWARD_STEPS = ("backward", "backward_compile")
STEP_DESCRIPTIONS = {
    "indexed": "input projections in one matmul, read as XW[t]",
    "hoisted": "... split once with XW.unbind(0)",
    "fused": "+ both gates' hidden weights in one matmul",
    "reset_after": "+ reset after the matmul: 1 hidden matmul per step",
    "jit": "+ torch.jit.script",
    "compile": "+ torch.compile",
    "backward": "reset after, backward by hand: weight grads in one matmul",
    "backward_compile": "... both loops compiled (fused elementwise)",
}


def project_inputs(inputs: torch.Tensor, W_x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``X_t W_x + b`` for all steps in one matmul: ``(T, B, num_inputs)`` -> ``(T, B, 3h)``."""
    return torch.addmm(b, inputs.flatten(0, 1), W_x).unflatten(0, (inputs.shape[0], inputs.shape[1]))


def reset_before_loop(XW, H, W_h, *, unbind: bool, fuse_gates: bool):
    """d2l's recurrence on precomputed projections ``XW`` of shape ``(T, B, 3h)`` from the state ``H``
    of shape ``(B, h)``; returns ``(outputs (T, B, h), H)``.

    ``unbind=False`` reads ``XW[t]`` inside the loop (the slow backward), ``fuse_gates=True`` computes
    both gates' hidden terms in one matmul.
    """
    h = H.shape[1]
    W_hz, W_hr, W_hh = W_h.split(h, dim=1)  # views of the fused weights
    W_hzr = W_h[:, :2 * h]
    steps = XW.unbind(0) if unbind else (XW[t] for t in range(XW.shape[0]))
    outputs = []
    for XW_t in steps:
        XZR, XH = XW_t.split([2 * h, h], dim=1)
        if fuse_gates:
            Z, R = torch.sigmoid(XZR + H @ W_hzr).chunk(2, dim=1)
        else:
            XZ, XR = XZR.chunk(2, dim=1)
            Z, R = torch.sigmoid(XZ + H @ W_hz), torch.sigmoid(XR + H @ W_hr)
        H_tilde = torch.tanh(XH + (R * H) @ W_hh)
        H = Z * H + (1 - Z) * H_tilde
        outputs.append(H)
    return torch.stack(outputs), H


def reset_after_forward(inputs: torch.Tensor, H: torch.Tensor, W_x: torch.Tensor, b: torch.Tensor,
                        W_h: torch.Tensor, b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reset-after GRU over ``inputs`` of shape ``(T, B, num_inputs)`` from ``H`` of shape ``(B, h)``:
    one input matmul for all steps, then one hidden matmul per step. Returns ``(outputs (T, B, h), H)``."""
    h = H.shape[1]
    XW = project_inputs(inputs, W_x, b)
    b_h = torch.cat([torch.zeros(2 * h, dtype=b_hh.dtype, device=b_hh.device), b_hh])  # (3h,)
    outputs = []
    for XW_t in XW.unbind(0):
        HW = torch.addmm(b_h, H, W_h)  # (B, 3h): all hidden terms of the step
        XZR, XH = XW_t.split([2 * h, h], dim=1)
        HZR, HH = HW.split([2 * h, h], dim=1)
        Z, R = torch.sigmoid(XZR + HZR).chunk(2, dim=1)
        H_tilde = torch.tanh(XH + R * HH)
        H = Z * H + (1 - Z) * H_tilde
        outputs.append(H)
    return torch.stack(outputs), H


def use_repo_compile_cache() -> str:
    """Point torch.compile's cache (``TORCHINDUCTOR_CACHE_DIR``) at the git-ignored ``build/torchinductor``
    of the course, not at a shared system folder; return the folder."""
    folder = str(build_dir() / "torchinductor")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    return folder


@functools.cache
def _compiled_forward(step: str):
    """The reset-after forward for ``step``: eager, scripted or compiled (each made once per process)."""
    if step == "jit":
        with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.compile; still taught
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.script(reset_after_forward)
    if step == "compile":
        use_repo_compile_cache()
        return torch.compile(reset_after_forward, dynamic=False)
    return reset_after_forward


def hand_forward_loop(XW, H, W_h, b_hh):
    """The reset-after recurrence on precomputed ``XW`` (``(T, B, 3h)``, biases included) from ``H``
    ``(B, h)``, keeping what the backward needs: returns ``(outputs, Z, R, N, G)``, each ``(T, B, h)``, with
    ``N`` the candidate and ``G = H W_hh + b_hh`` its hidden part."""
    h = H.shape[1]
    b_h = torch.cat([torch.zeros(2 * h, dtype=b_hh.dtype, device=b_hh.device), b_hh])  # (3h,)
    outputs, Zs, Rs, Ns, Gs = [], [], [], [], []
    for XW_t in XW.unbind(0):
        HW = torch.addmm(b_h, H, W_h)  # (B, 3h): the step's one matmul
        XZR, XN = XW_t.split([2 * h, h], dim=1)
        HZR, G = HW.split([2 * h, h], dim=1)
        Z, R = torch.sigmoid(XZR + HZR).chunk(2, dim=1)
        N = torch.tanh(XN + R * G)
        H = N + Z * (H - N)  # = Z * H + (1 - Z) * N
        outputs.append(H), Zs.append(Z), Rs.append(R), Ns.append(N), Gs.append(G)
    return torch.stack(outputs), torch.stack(Zs), torch.stack(Rs), torch.stack(Ns), torch.stack(Gs)


def hand_backward_loop(grad_outputs, H_prev, Z, R, N, G, W_h_T):
    """Backward through time for :func:`hand_forward_loop`: ``grad_outputs`` and the saved ``(T, B, h)``
    tensors (``H_prev[t]`` is the state that entered step ``t``), ``W_h_T`` the ``(3h, h)`` transpose of
    ``W_h``. Returns ``dXW`` and ``dHW`` (``(T, B, 3h)``: the gradients of the input and hidden
    pre-activations of every step) and ``dH0`` ``(B, h)``."""
    dH = torch.zeros_like(H_prev[0])
    dXWs, dHWs = [], []
    for t in range(grad_outputs.shape[0] - 1, -1, -1):
        dH = dH + grad_outputs[t]
        z, r, n, g = Z[t], R[t], N[t], G[t]
        dn = dH * (1 - z) * (1 - n * n)  # da_h: through the candidate's tanh
        dz = dH * (H_prev[t] - n) * z * (1 - z)  # da_z
        dr = dn * g * r * (1 - r)  # da_r
        dHW = torch.cat([dz, dr, dn * r], dim=1)  # the hidden part of the candidate is gated by R
        dXWs.append(torch.cat([dz, dr, dn], dim=1))
        dHWs.append(dHW)
        dH = torch.addmm(dH * z, dHW, W_h_T)  # the additive path, plus the step's one matmul back
    return torch.stack(dXWs[::-1]), torch.stack(dHWs[::-1]), dH


@functools.cache
def _hand_loops(compiled: bool):
    """The two loops of :class:`HandBackwardGRU`, eager or compiled (made once per process). Compiled with
    static shapes: each new (T, B) compiles once (about a minute; later processes read the cache), which
    measured faster than dynamic shapes at chapter 03's size."""
    if not compiled:
        return hand_forward_loop, hand_backward_loop
    use_repo_compile_cache()
    return torch.compile(hand_forward_loop, dynamic=False), torch.compile(hand_backward_loop, dynamic=False)


def _check_hand_arguments(inputs, H0, W_x, b, W_h, b_hh, compiled) -> None:
    """The arguments of :class:`HandBackwardGRU`: ``W_h`` ``(h, 3h)`` gives ``h``; ``W_x`` ``(num_inputs, 3h)``,
    ``b`` ``(3h,)``, ``b_hh`` ``(h,)``, ``inputs`` ``(T, B, num_inputs)`` and ``H0`` ``(B, h)`` in its dtype and on
    its device; ``compiled`` True or False."""
    name = "HandBackwardGRU"
    for label, W in (("W_x", W_x), ("W_h", W_h)):
        if not isinstance(W, torch.Tensor) or W.dim() != 2:
            got = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
            raise ValueError(f"{name} expects {label} to be a matrix (the fused weights [z | r | h]), got {got}")
    (num_inputs, _), h = W_x.shape, W_h.shape[0]
    check_tensor(name, "W_h", W_h, (h, 3 * h))
    check_tensor(name, "W_x", W_x, (num_inputs, 3 * h), W_h)
    check_tensor(name, "b", b, (3 * h,), W_h)
    check_tensor(name, "b_hh", b_hh, (h,), W_h)
    _, B = check_sequence(name, inputs, num_inputs, W_h)
    check_state(name, H0, B, h, W_h, label="H0")
    check_switches(name, compiled=compiled)


class HandBackwardGRU(torch.autograd.Function):
    """The reset-after GRU with the backward pass written by hand (see :mod:`utils.gru_backward`).

    ``HandBackwardGRU.apply(inputs (T, B, num_inputs), H0 (B, h), W_x, b, W_h, b_hh, compiled)`` returns the
    outputs ``(T, B, h)``. Backward runs :func:`hand_backward_loop` and then takes every weight gradient in
    one matmul over all ``T * B`` rows: ``dW_h = H_prev^T dHW``, ``dW_x = X^T dXW``.
    """

    @staticmethod
    def forward(ctx, inputs, H0, W_x, b, W_h, b_hh, compiled):
        _check_hand_arguments(inputs, H0, W_x, b, W_h, b_hh, compiled)
        forward_loop, _ = _hand_loops(compiled)
        outputs, Z, R, N, G = forward_loop(project_inputs(inputs, W_x, b), H0, W_h, b_hh)
        ctx.save_for_backward(inputs, H0, W_x, W_h, outputs, Z, R, N, G)
        ctx.compiled = compiled
        return outputs

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, H0, W_x, W_h, outputs, Z, R, N, G = ctx.saved_tensors
        _, backward_loop = _hand_loops(ctx.compiled)
        T, B, h = outputs.shape
        H_prev = torch.cat([H0[None], outputs[:-1]])  # the state entering each step
        dXW, dHW, dH0 = backward_loop(grad_outputs.contiguous(), H_prev, Z, R, N, G, W_h.T.contiguous())
        dXW, dHW = dXW.reshape(T * B, 3 * h), dHW.reshape(T * B, 3 * h)
        dW_h = H_prev.reshape(T * B, h).T @ dHW  # all steps at once
        dW_x = inputs.reshape(T * B, -1).T @ dXW
        dX = (dXW @ W_x.T).view_as(inputs) if ctx.needs_input_grad[0] else None
        return dX, dH0, dW_x, dXW.sum(0), dW_h, dHW[:, 2 * h:].sum(0), None


class FastGRU(nn.Module):
    """A one-layer GRU with fused parameters (see the module docstring), run by one optimisation ``step``.

    Same interface as ``GRUScratch``: ``forward(inputs (T, B, num_inputs), H=None) -> (outputs (T, B, h),
    H (B, h))``. Weights are drawn from ``N(0, sigma^2)``, biases start at zero, as in d2l. It serves as the
    ``rnn`` of ``d2l.RNNLMScratch`` like ``GRUScratch``: replacing one by the other is the one switch that
    trains a course language model with the fast GRU.
    """

    def __init__(self, num_inputs, num_hiddens, step="reset_after", sigma=0.01):
        super().__init__()
        check_sizes("FastGRU", num_inputs=num_inputs, num_hiddens=num_hiddens)
        check_non_negative_numbers("FastGRU", sigma=sigma)
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; expected one of {STEPS}")
        self.num_inputs, self.num_hiddens, self.step, self.sigma = num_inputs, num_hiddens, step, sigma
        self.W_x = nn.Parameter(torch.randn(num_inputs, 3 * num_hiddens) * sigma)
        self.W_h = nn.Parameter(torch.randn(num_hiddens, 3 * num_hiddens) * sigma)
        self.b = nn.Parameter(torch.zeros(3 * num_hiddens))
        self.b_hh = nn.Parameter(torch.zeros(num_hiddens)) if step in RESET_AFTER_STEPS else None

    @property
    def reset_after(self) -> bool:
        return self.step in RESET_AFTER_STEPS

    def forward(self, inputs, H=None):
        check_sequence("FastGRU", inputs, self.num_inputs, self.W_x)
        H = initial_state("FastGRU", inputs, H, self.num_hiddens, like=self.W_x)
        if self.step in HAND_BACKWARD_STEPS and torch.is_grad_enabled():
            outputs = HandBackwardGRU.apply(inputs, H, self.W_x, self.b, self.W_h, self.b_hh,
                                            self.step == "backward_compile")
            return outputs, outputs[-1]
        if self.reset_after:
            return _compiled_forward(self.step)(inputs, H, self.W_x, self.b, self.W_h, self.b_hh)
        XW = project_inputs(inputs, self.W_x, self.b)
        return reset_before_loop(XW, H, self.W_h, unbind=self.step != "indexed",
                                 fuse_gates=self.step != "hoisted" and self.step != "indexed")

    @classmethod
    def from_scratch(cls, gru: GRUScratch, step: str) -> "FastGRU":
        """A FastGRU with the weights of ``gru`` (a ``GRUScratch`` with both gates); its outputs equal
        ``gru``'s. The reset-after steps need ``gru.reset_after=True`` and the others ``False``, so that
        both compute the same formulation. It leaves PyTorch's global random state as it was, so that a model
        built around it draws the same initial weights and minibatches as one built around ``gru``."""
        if not isinstance(gru, GRUScratch):
            raise TypeError(f"from_scratch expects a utils.gru.GRUScratch, got {type(gru).__name__}")
        if type(gru) is not GRUScratch:
            raise TypeError(f"from_scratch expects a plain utils.gru.GRUScratch (d2l's gates), got the subclass "
                            f"{type(gru).__name__}, whose gates are computed differently")
        if not (gru.reset_gate and gru.update_gate):
            raise ValueError("from_scratch needs a GRUScratch with both gates (reset_gate=update_gate=True)")
        with torch.random.fork_rng(devices=[]):  # the random weights drawn here are overwritten below
            model = cls(gru.num_inputs, gru.num_hiddens, step).to(device=gru.W_xz.device, dtype=gru.W_xz.dtype)
        if model.reset_after != gru.reset_after:
            raise ValueError(f"step {step!r} computes the reset-{'after' if model.reset_after else 'before'} "
                             f"GRU but the GRUScratch has reset_after={gru.reset_after}")
        with torch.no_grad():
            model.W_x.copy_(torch.cat([gru.W_xz, gru.W_xr, gru.W_xh], dim=1))
            model.W_h.copy_(torch.cat([gru.W_hz, gru.W_hr, gru.W_hh], dim=1))
            model.b.copy_(torch.cat([gru.b_z, gru.b_r, gru.b_h]))
            if model.reset_after:
                model.b_hh.copy_(gru.b_hh)
        return model
