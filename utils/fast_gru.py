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
"""
import functools
import os
import warnings

import torch
from torch import nn

from utils.gru import GRUScratch
from utils.paths import build_dir
from utils.shapes import check_sequence, check_sizes, initial_state

STEPS = ("indexed", "hoisted", "fused", "reset_after", "jit", "compile")
RESET_AFTER_STEPS = ("reset_after", "jit", "compile")
STEP_DESCRIPTIONS = {
    "indexed": "input projections in one matmul, read as XW[t]",
    "hoisted": "... split once with XW.unbind(0)",
    "fused": "+ both gates' hidden weights in one matmul",
    "reset_after": "+ reset after the matmul: 1 hidden matmul per step",
    "jit": "+ torch.jit.script",
    "compile": "+ torch.compile",
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


class FastGRU(nn.Module):
    """A one-layer GRU with fused parameters (see the module docstring), run by one optimisation ``step``.

    Same interface as ``GRUScratch``: ``forward(inputs (T, B, num_inputs), H=None) -> (outputs (T, B, h),
    H (B, h))``. Weights are drawn from ``N(0, sigma^2)``, biases start at zero, as in d2l.
    """

    def __init__(self, num_inputs, num_hiddens, step="reset_after", sigma=0.01):
        super().__init__()
        check_sizes("FastGRU", num_inputs=num_inputs, num_hiddens=num_hiddens)
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; expected one of {STEPS}")
        self.num_inputs, self.num_hiddens, self.step = num_inputs, num_hiddens, step
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
        if self.reset_after:
            return _compiled_forward(self.step)(inputs, H, self.W_x, self.b, self.W_h, self.b_hh)
        XW = project_inputs(inputs, self.W_x, self.b)
        return reset_before_loop(XW, H, self.W_h, unbind=self.step != "indexed",
                                 fuse_gates=self.step != "hoisted" and self.step != "indexed")

    @classmethod
    def from_scratch(cls, gru: GRUScratch, step: str) -> "FastGRU":
        """A FastGRU with the weights of ``gru`` (a ``GRUScratch`` with both gates); its outputs equal
        ``gru``'s. The reset-after steps need ``gru.reset_after=True`` and the others ``False``, so that
        both compute the same formulation."""
        if not isinstance(gru, GRUScratch):
            raise TypeError(f"from_scratch expects a utils.gru.GRUScratch, got {type(gru).__name__}")
        if type(gru) is not GRUScratch:
            raise TypeError(f"from_scratch expects a plain utils.gru.GRUScratch (d2l's gates), got the subclass "
                            f"{type(gru).__name__}, whose gates are computed differently")
        if not (gru.reset_gate and gru.update_gate):
            raise ValueError("from_scratch needs a GRUScratch with both gates (reset_gate=update_gate=True)")
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
