"""utils.checks: every check passes every correct answer (written here from the equations, in several
spellings), fails with one line that says what is wrong and what to do, and cannot be passed by delegating to the
course's code or patching the checker (tests/test_cheats.py holds the ways round the checks that once worked)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import checks
from utils.checks import check
from utils.classifier import GRUClassifier
from utils.gru import GRUScratch
from utils.gru_backward import step_backward
from utils.ideal_gates import ideal_gate_schedule


def one_line(capsys):
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert len(lines) == 1 and printed.err == "", printed
    return lines[0]


def passes(capsys, name, answer, **variation):
    """The check passes ``answer``: it returns True and prints one line ``✓ ...``, nothing on stderr."""
    passed = check(name, answer, **variation)
    line = one_line(capsys)
    assert passed is True and line.startswith("✓ "), line
    return line


def fails(capsys, name, answer, *fragments, **variation):
    """The check fails ``answer``: it prints one line ``✗ ...`` holding every fragment, and raises
    AssertionError with that line and what to do next (even where a graded cell's ``assert`` was dropped)."""
    with pytest.raises(AssertionError) as raised:
        check(name, answer, **variation)
    line = one_line(capsys)
    assert line.startswith("✗ ") and str(raised.value).startswith(line[2:]) and "\n" not in str(raised.value), line
    assert "fix your code" in str(raised.value)
    for fragment in fragments:
        assert fragment in line, line
    return line


def not_implemented(*args):
    raise NotImplementedError("a hint")


# ---------- correct answers, written from the equations ----------

def gru_step(gru, X, H):
    Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
    R = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
    return Z * H + (1 - Z) * torch.tanh(X @ gru.W_xh + (R * H) @ gru.W_hh + gru.b_h)


def reset_only_step(gru, X, H):
    R = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
    return torch.tanh(X @ gru.W_xh + (R * H) @ gru.W_hh + gru.b_h)


def update_only_step(gru, X, H):
    Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
    return Z * H + (1 - Z) * torch.tanh(X @ gru.W_xh + H @ gru.W_hh + gru.b_h)


def schedule(seq_len, t_prime):  # R = 0 at t'
    Z, R = torch.full((seq_len, 1, 1), 0.5), torch.full((seq_len, 1, 1), 0.5)
    Z[t_prime], R[t_prime], Z[t_prime + 1:] = 0.0, 0.0, 1.0
    return Z, R


def schedule_kept_zero(seq_len, t_prime):  # the second family: keep the zero state until t', R free there
    Z, R = torch.ones(seq_len, 1, 1), torch.full((seq_len, 1, 1), 0.7)
    Z[t_prime] = 0.0
    return Z, R


def antisymmetric_step(cell, x, h):
    gate_in, candidate_in = (x @ cell.weight_ih.T + cell.bias_ih).chunk(2, dim=-1)
    r = h @ cell.recurrent_matrix().T + cell.bias_hh
    return h + cell.epsilon * torch.sigmoid(gate_in + r) * torch.tanh(candidate_in + r)


class Classifier(nn.Module):
    def __init__(self, cell, num_classes):
        super().__init__()
        self.cell, self.head = cell, nn.Linear(cell.hidden_size, num_classes)

    def states(self, X):
        h, states = X.new_zeros(X.shape[0], self.cell.hidden_size), []
        for t in range(X.shape[1]):
            h = self.cell(X[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, X):
        return self.head(self.states(X)[:, -1])


def step_gradients(p, cache, dH_new):
    X, H, Z, R, H_tilde, RH = (cache[k] for k in ("X", "H", "Z", "R", "H_tilde", "RH"))
    g = {"dZ": dH_new * (H - H_tilde), "dH_tilde": dH_new * (1 - Z)}
    g["da_h"], g["da_z"] = g["dH_tilde"] * (1 - H_tilde ** 2), g["dZ"] * Z * (1 - Z)
    dRH = g["da_h"] @ p["W_hh"].T
    g["dR"] = dRH * H
    g["da_r"] = g["dR"] * R * (1 - R)
    g["dH"] = dH_new * Z + g["da_z"] @ p["W_hz"].T + g["da_r"] @ p["W_hr"].T + dRH * R
    g["dX"] = g["da_z"] @ p["W_xz"].T + g["da_r"] @ p["W_xr"].T + g["da_h"] @ p["W_xh"].T
    for gate in "zrh":
        g[f"dW_x{gate}"], g[f"db_{gate}"] = X.T @ g[f"da_{gate}"], g[f"da_{gate}"].sum(0)
    g["dW_hz"], g["dW_hr"], g["dW_hh"] = H.T @ g["da_z"], H.T @ g["da_r"], RH.T @ g["da_h"]
    return g


def fused_step(XW, H, W_h, b_hh):
    h = H.shape[1]
    HW = H @ W_h
    Z, R = torch.sigmoid(XW[:, :2 * h] + HW[:, :2 * h]).chunk(2, dim=1)
    return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (HW[:, 2 * h:] + b_hh))


GATES = {"write": (-40.0, 40.0), "skip": (40.0, 0.0), "reset": (-40.0, -40.0)}  # (update, reset) pre-activations


def gate_weights(actions, num_hiddens):  # chapter 01
    return (torch.tensor([[GATES[a][0]] * num_hiddens for a in actions]),
            torch.tensor([[GATES[a][1]] * num_hiddens for a in actions]))


def reset_after_step(gru, X, H):  # chapter 02
    Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
    R = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
    return Z * H + (1 - Z) * torch.tanh(X @ gru.W_xh + gru.b_h + R * (H @ gru.W_hh + gru.b_hh))


def unpack_gru_weights(gru):  # chapter 04
    h = gru.hidden_size
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    r, z, n = slice(0, h), slice(h, 2 * h), slice(2 * h, 3 * h)
    return {"W_xr": w_ih[r].T, "W_xz": w_ih[z].T, "W_xh": w_ih[n].T, "W_hr": w_hh[r].T, "W_hz": w_hh[z].T,
            "W_hh": w_hh[n].T, "b_r": b_ih[r] + b_hh[r], "b_z": b_ih[z] + b_hh[z], "b_h": b_ih[n], "b_hh": b_hh[n]}


def text_perplexity(losses, counts):  # chapter 06
    return math.exp((losses * counts).sum().item() / counts.sum().item())


BLOCKS = {"RNN": 1, "GRU": 3, "LSTM": 4}


def parameter_budget(kind, d, h):  # chapter 07
    count = BLOCKS[kind] * (d * h + h * h + 2 * h)
    width = h
    while (width + 1) * (d + width + 3) <= count:
        width += 1
    return count, width


CORRECT = {"gru_step": gru_step, "fused_reset_after_step": fused_step, "reset_only_step": reset_only_step, "update_only_step": update_only_step,
           "ideal_gate_schedule": schedule, "gated_antisymmetric_step": antisymmetric_step,
           "gru_classifier": Classifier, "gru_step_backward": step_gradients, "hand_set_gates": gate_weights,
           "reset_after_gru_step": reset_after_step, "unpack_gru_weights": unpack_gru_weights,
           "text_perplexity": text_perplexity, "parameter_budget": parameter_budget}
VARIATIONS = {"gru_step": dict(seed=5, batch=7, num_inputs=2, num_hiddens=6),
              "reset_only_step": dict(seed=1, batch=1), "update_only_step": dict(seed=2, num_hiddens=9),
              "ideal_gate_schedule": dict(seed=3, cases=((10, 9), (3, 1))),
              "gated_antisymmetric_step": dict(seed=4, batch=2, epsilon=0.05, gamma=0.0),
              "gru_classifier": dict(seed=6, batch=3, steps=2, num_classes=2),
              "gru_step_backward": dict(seed=7, batch=2, num_inputs=5, num_hiddens=3),
              "fused_reset_after_step": dict(seed=8, batch=2, num_hiddens=7),
              "hand_set_gates": dict(seed=2, actions=("skip", "skip", "write", "reset", "reset", "write"), num_hiddens=5),
              "reset_after_gru_step": dict(seed=3, batch=2, num_inputs=6, num_hiddens=3),
              "unpack_gru_weights": dict(seed=3, num_inputs=2, num_hiddens=6),
              "text_perplexity": dict(seed=3, cases=(12, 2, 30)),
              "parameter_budget": dict(cases=(("LSTM", 3, 100), ("GRU", 100, 1), ("RNN", 1, 1), ("GRU", 28, 256)))}


def test_every_check_has_a_correct_answer_here():
    assert set(CORRECT) == set(checks.CHECKS) == set(VARIATIONS)


@pytest.mark.parametrize("name", CORRECT)
def test_every_check_passes_a_correct_answer_at_every_variation(capsys, name):
    passes(capsys, name, CORRECT[name])
    passes(capsys, name, CORRECT[name], **VARIATIONS[name])


def test_the_second_exact_schedule_family_passes(capsys):
    passes(capsys, "ideal_gate_schedule", schedule_kept_zero)


# ---------- every correct spelling passes ----------

def gru_step_fused_gates(gru, X, H):  # both gates from one concatenated product
    Z, R = torch.sigmoid(X @ torch.cat([gru.W_xz, gru.W_xr], 1) + H @ torch.cat([gru.W_hz, gru.W_hr], 1)
                         + torch.cat([gru.b_z, gru.b_r])).chunk(2, dim=1)
    return torch.lerp(torch.tanh(torch.addmm(gru.b_h, X, gru.W_xh) + (R * H) @ gru.W_hh), H, Z)


def gru_step_einsum(gru, X, H):
    p = vars(gru)
    affine = lambda g, hidden: torch.einsum("bi,ij->bj", X, p[f"W_x{g}"]) + torch.einsum("bi,ij->bj", hidden,
                                                                                          p[f"W_h{g}"]) + p[f"b_{g}"]
    Z, R = torch.sigmoid(affine("z", H)), torch.sigmoid(affine("r", H))
    return Z * H + (1 - Z) * torch.tanh(affine("h", R * H))


def gru_step_copied_into_a_new_tensor(gru, X, H):  # torch.tensor of a tensor warns (UserWarning)
    return torch.tensor(gru_step(gru, X, H))


def reset_only_linear(gru, X, H):
    R = torch.sigmoid(F.linear(X, gru.W_xr.T, gru.b_r) + F.linear(H, gru.W_hr.T))
    return torch.tanh(F.linear(X, gru.W_xh.T, gru.b_h) + F.linear(R * H, gru.W_hh.T))


def update_only_lerp(gru, X, H):
    Z = torch.sigmoid(torch.addmm(gru.b_z, X, gru.W_xz) + torch.mm(H, gru.W_hz))
    return torch.lerp(torch.tanh(torch.addmm(gru.b_h, X, gru.W_xh) + torch.mm(H, gru.W_hh)), H, Z)


def schedule_as_a_list(seq_len, t_prime):
    return list(schedule(seq_len, t_prime))


def schedule_of_integers(seq_len, t_prime):  # exact 0s and 1s, stored as integers
    Z, R = torch.zeros(seq_len, 1, 1, dtype=torch.int64), torch.zeros(seq_len, 1, 1, dtype=torch.int64)
    Z[t_prime + 1:] = 1
    return Z, R


def antisymmetric_with_the_cells_helpers(cell, x, h):  # the methods printed above the exercise in chapter 09
    gate_in, candidate_in = cell.input_projection(x).chunk(2, dim=-1)
    r = cell.recurrent_projection(h, cell.recurrent_matrix())
    z = torch.sigmoid(cell.integrate(gate_in, r))
    return h + cell.epsilon * z * torch.tanh(cell.integrate(candidate_in, r))


def antisymmetric_addmm(cell, x, h):
    W = cell.weight_hh
    A = W - W.T - cell.gamma * torch.eye(cell.hidden_size, dtype=W.dtype)
    r = torch.addmm(cell.bias_hh, h, A.T)
    gate_in, candidate_in = torch.addmm(cell.bias_ih, x, cell.weight_ih.T).split(cell.hidden_size, dim=1)
    return h + cell.epsilon * torch.sigmoid(gate_in + r) * torch.tanh(candidate_in + r)


class NotebookClassifier(nn.Module):  # chapter 12's solution
    def __init__(self, cell, num_classes):
        super().__init__()
        self.cell = cell
        self.head = nn.Linear(cell.hidden_size, num_classes)

    def forward(self, X):
        h = X.new_zeros(X.shape[0], self.cell.hidden_size)
        for t in range(X.shape[1]):
            h = self.cell(X[:, t], h)
        return self.head(h)


class UnbindingClassifier(nn.Module):
    def __init__(self, cell, num_classes):
        super().__init__()
        self.head = nn.Linear(cell.hidden_size, num_classes)
        self.cell = cell

    def forward(self, X):
        h = torch.zeros(X.shape[0], self.cell.hidden_size, dtype=X.dtype)
        outputs = []
        for x_t in X.unbind(1):
            h = self.cell.forward(x_t, h)
            outputs.append(h)
        return self.head(torch.stack(outputs, 1)[:, -1, :])


def step_gradients_einsum(p, cache, dH_new):
    g = step_gradients(p, cache, dH_new)
    X, H, RH = cache["X"], cache["H"], cache["RH"]
    for gate in "zrh":
        g[f"dW_x{gate}"] = torch.einsum("bi,bj->ij", X, g[f"da_{gate}"])
        g[f"db_{gate}"] = torch.sum(g[f"da_{gate}"], dim=0)
    g["dW_hz"], g["dW_hr"], g["dW_hh"] = (torch.einsum("bi,bj->ij", v, g[f"da_{gate}"])
                                          for gate, v in (("z", H), ("r", H), ("h", RH)))
    return dict(g)


def fused_with(product):
    def fused(XW_t, H, W_h, b_hh):
        h = H.shape[1]
        HW = product(H, W_h)
        Z, R = torch.sigmoid(XW_t[:, :2 * h] + HW[:, :2 * h]).chunk(2, dim=1)
        return Z * H + (1 - Z) * torch.tanh(XW_t[:, 2 * h:] + R * (HW[:, 2 * h:] + b_hh))
    return fused


PRODUCTS = {"@": lambda H, W: H @ W, "matmul": torch.matmul, "mm": torch.mm, "linalg.matmul": torch.linalg.matmul,
            "bmm": lambda H, W: H[None].bmm(W[None])[0], "inner": lambda H, W: torch.inner(H, W.T),
            "multi_dot": lambda H, W: torch.linalg.multi_dot([H, W]),
            "addmm": lambda H, W: torch.addmm(H.new_zeros(W.shape[1]), H, W), "F.linear": lambda H, W: F.linear(H, W.T),
            "einsum": lambda H, W: torch.einsum("bi,ij->bj", H, W)}
SPELLINGS = [("gru_step", gru_step_fused_gates), ("gru_step", gru_step_einsum), ("reset_only_step", reset_only_linear),
             ("update_only_step", update_only_lerp), ("ideal_gate_schedule", schedule_as_a_list),
             ("ideal_gate_schedule", schedule_of_integers), ("ideal_gate_schedule", schedule_kept_zero),
             ("gated_antisymmetric_step", antisymmetric_with_the_cells_helpers),
             ("gated_antisymmetric_step", antisymmetric_addmm), ("gru_classifier", NotebookClassifier),
             ("gru_classifier", UnbindingClassifier), ("gru_step_backward", step_gradients_einsum)] + [
                ("fused_reset_after_step", fused_with(product)) for product in PRODUCTS.values()]




def gate_weights_as_lists(actions, num_hiddens):  # lists of lists, |a| = 20, the skip's reset gate left at 0.5
    table = {"write": (-20, 20), "skip": (20, 0), "reset": (-20, -20)}
    return [[table[a][0]] * num_hiddens for a in actions], [[table[a][1]] * num_hiddens for a in actions]


def gate_weights_by_masks(actions, num_hiddens):  # a dict, float32, different magnitudes per unit, skip's R at 0
    n = len(actions)
    scale = torch.linspace(15, 60, num_hiddens)
    keep = torch.tensor([a == "skip" for a in actions], dtype=torch.float32)[:, None]
    see = torch.tensor([a == "write" for a in actions], dtype=torch.float32)[:, None]
    return {"W_xr": (2 * see - 1) * scale.expand(n, num_hiddens), "W_xz": (2 * keep - 1) * scale}


def gate_weights_saturated(actions, num_hiddens):  # float64, signs from torch.where
    is_skip = torch.tensor([a == "skip" for a in actions])[:, None].expand(-1, num_hiddens)
    is_write = torch.tensor([a == "write" for a in actions])[:, None].expand(-1, num_hiddens)
    big = torch.tensor(100.0, dtype=torch.float64)
    return [torch.where(is_skip, big, -big), torch.where(is_write | is_skip, big, -big)]


def reset_after_linear(gru, X, H):
    Z = torch.sigmoid(F.linear(X, gru.W_xz.T, gru.b_z) + F.linear(H, gru.W_hz.T))
    R = torch.sigmoid(F.linear(X, gru.W_xr.T, gru.b_r) + F.linear(H, gru.W_hr.T))
    return torch.lerp(torch.tanh(F.linear(X, gru.W_xh.T, gru.b_h) + R * F.linear(H, gru.W_hh.T, gru.b_hh)), H, Z)


def reset_after_fused(gru, X, H):  # all hidden products in one, as cuDNN does
    h = H.shape[1]
    XW = X @ torch.cat([gru.W_xz, gru.W_xr, gru.W_xh], 1) + torch.cat([gru.b_z, gru.b_r, gru.b_h])
    HW = torch.addmm(torch.cat([torch.zeros(2 * h, dtype=H.dtype), gru.b_hh]), H,
                     torch.cat([gru.W_hz, gru.W_hr, gru.W_hh], 1))
    Z, R = torch.sigmoid(XW[:, :2 * h] + HW[:, :2 * h]).split(h, dim=1)
    return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * HW[:, 2 * h:])


def unpack_by_chunks(gru):
    names = ("r", "z", "h")
    w_x, w_h = gru.weight_ih_l0.chunk(3), gru.weight_hh_l0.chunk(3)
    b_i, b_h = gru.bias_ih_l0.chunk(3), gru.bias_hh_l0.chunk(3)
    out = {f"W_x{g}": w.t().contiguous() for g, w in zip(names, w_x)}
    out.update({f"W_h{g}": w.t().clone() for g, w in zip(names, w_h)})
    out.update(b_r=b_i[0] + b_h[0], b_z=b_i[1] + b_h[1], b_h=b_i[2].clone(), b_hh=b_h[2].clone())
    return out


def unpack_from_the_state_dict(gru):
    state, h = gru.state_dict(), gru.hidden_size
    w_ih, w_hh = state["weight_ih_l0"].split(h), state["weight_hh_l0"].split(h)
    b_ih, b_hh = state["bias_ih_l0"].split(h), state["bias_hh_l0"].split(h)
    out = {}
    for i, g in enumerate("rzh"):
        out[f"W_x{g}"], out[f"W_h{g}"] = w_ih[i].transpose(0, 1), w_hh[i].transpose(0, 1)
    out["b_r"], out["b_z"], out["b_h"], out["b_hh"] = b_ih[0] + b_hh[0], b_ih[1] + b_hh[1], b_ih[2], b_hh[2]
    return out


def unpack_in_float32(gru):  # float32 copies: rounding is tolerated
    return {name: value.float() for name, value in unpack_gru_weights(gru).items()}


def perplexity_as_a_tensor(losses, counts):  # a 0-d tensor
    return torch.exp((losses * counts).sum() / counts.sum())


def perplexity_in_numpy(losses, counts):  # a numpy float64
    return np.exp(np.average(losses.numpy(), weights=counts.numpy()))


def perplexity_in_float32(losses, counts):  # a one-element float32 tensor: rounding is tolerated
    losses, counts = losses.float(), counts.float()
    return torch.exp(torch.dot(losses, counts) / counts.sum()).reshape(1)


def perplexity_in_python(losses, counts):  # a loop over Python numbers
    total, tokens = 0.0, 0
    for loss, count in zip(losses.tolist(), counts.tolist()):
        total, tokens = total + loss * count, tokens + count
    return math.e ** (total / tokens)


def budget_by_the_quadratic(kind, d, h):  # integer square root, returned as a list
    count = BLOCKS[kind] * h * (d + h + 2)
    width = (math.isqrt((d + 2) ** 2 + 4 * count) - (d + 2)) // 2
    while width * (d + width + 2) > count:
        width -= 1
    return [count, width]


def budget_as_numbers_of_other_types(kind, d, h):  # a float and a 0-d tensor, both whole
    count, width = parameter_budget(kind, d, h)
    return float(count), torch.tensor(width)


def budget_in_numpy(kind, d, h):
    count = np.int64(BLOCKS[kind] * (d * h + h * h + 2 * h))
    widths = np.arange(1, 4 * (h + d) + 8)
    return count, widths[widths * (d + widths + 2) <= count].max()


SPELLINGS += [("hand_set_gates", gate_weights_as_lists), ("hand_set_gates", gate_weights_by_masks),
              ("hand_set_gates", gate_weights_saturated), ("reset_after_gru_step", reset_after_linear),
              ("reset_after_gru_step", reset_after_fused), ("unpack_gru_weights", unpack_by_chunks),
              ("unpack_gru_weights", unpack_from_the_state_dict), ("unpack_gru_weights", unpack_in_float32), ("text_perplexity", perplexity_as_a_tensor),
              ("text_perplexity", perplexity_in_numpy), ("text_perplexity", perplexity_in_float32),
              ("text_perplexity", perplexity_in_python), ("parameter_budget", budget_by_the_quadratic),
              ("parameter_budget", budget_as_numbers_of_other_types), ("parameter_budget", budget_in_numpy)]


@pytest.mark.parametrize("name, answer", SPELLINGS, ids=[f"{name}-{getattr(answer, '__name__', '')}{i}"
                                                         for i, (name, answer) in enumerate(SPELLINGS)])
def test_every_spelling_of_a_correct_answer_passes(capsys, name, answer):
    passes(capsys, name, answer)
    passes(capsys, name, answer, **VARIATIONS[name])


def test_a_warning_is_named_in_the_line_and_never_printed(capsys):
    line = passes(capsys, "gru_step", gru_step_copied_into_a_new_tensor)
    assert "(your code warned: UserWarning: To copy construct from a tensor" in line, line
    fails(capsys, "gru_step", lambda gru, X, H: torch.tensor(H), "H_new differs", "your code warned: UserWarning")


STORED_LINES = {  # what the graded cells of the stored chapters print first (nbval compares them)
    "gru_step": "your step matches d2l's equations on a random batch (B=5, 3 inputs, 4 units)",
    "ideal_gate_schedule": "from t' on, the states depend on x_t' alone (4 sequence lengths and t' values)",
    "reset_only_step": "your reset-only step matches d2l's equations on a random batch (B=5, 3 inputs, 4 units)",
    "update_only_step": "your update-only step matches d2l's equations on a random batch (B=5, 3 inputs, 4 units)",
    "gated_antisymmetric_step": "your step matches the gated antisymmetric cell's equations on a random batch (B=5)",
    "gru_step_backward": "all 17 gradients equal autograd's (B=5, 3 inputs, 4 units)",
    "fused_reset_after_step": "H_new is right, with one matrix product (B=5, h=4)",
    "gru_classifier": "logits of shape (4, 7) from each example's last state (B=4, T=6)",
    "hand_set_gates": "each symbol writes, skips or resets as asked (4 symbols, 3 units), and a GRU with these gates "
                      "follows the ideal one",
    "reset_after_gru_step": "your step matches the reset-after equations on a random batch (B=5, 3 inputs, 4 units)",
    "unpack_gru_weights": "all 10 tensors are right, and a reset-after loop with them reproduces the nn.GRU "
                          "(5 inputs, 4 units)",
    "text_perplexity": "the perplexity of 3 texts of 9, 1, 4 minibatches, weighted by their tokens",
    "parameter_budget": "counts and matching widths right for 4 layers (GRU 28x32, LSTM 28x32, RNN 8x59, GRU 8x32)"}


@pytest.mark.parametrize("name", STORED_LINES)
def test_a_passing_check_prints_the_stored_chapters_line(capsys, name):
    assert passes(capsys, name, CORRECT[name]) == f"✓ {name}: {STORED_LINES[name]}"


@pytest.mark.parametrize("name", [n for n in CORRECT if n != "gru_classifier"])
def test_a_stub_is_not_implemented_yet(capsys, name):
    fails(capsys, name, not_implemented, "not implemented yet (a hint)")


def test_a_classifier_stub_is_not_implemented_yet(capsys):
    class Stub(Classifier):
        def forward(self, X):
            raise NotImplementedError
    fails(capsys, "gru_classifier", Stub, "gru_classifier: not implemented yet")


def test_an_unknown_check_is_an_error():
    with pytest.raises(ValueError, match="no check 'gru'"):
        check("gru", gru_step)


def test_another_exception_is_reported_by_type_and_message(capsys):
    def broken(gru, X, H):
        raise ValueError("bad shapes")
    fails(capsys, "gru_step", broken, "your code raised ValueError: bad shapes")


def test_the_checks_leave_the_random_state_alone(capsys):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check("gru_step", gru_step)
    assert torch.equal(torch.rand(3), expected)


# ---------- the checks cannot be fooled ----------

def test_delegating_to_the_course_is_refused_and_the_course_works_again_afterwards(capsys):
    def delegates(gru, X, H):
        reference = GRUScratch(X.shape[1], H.shape[1]).double()
        for name in ("W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h"):
            getattr(reference, name).data = getattr(gru, name)
        return reference.step(X, H).H
    fails(capsys, "gru_step", delegates, "your code ran GRUScratch.__init__ from the course's code (utils/gru.py)")
    fails(capsys, "gru_step", lambda gru, X, H: gru.step(X, H).H, "has no attribute 'step'")

    def delegates_schedule(seq_len, t_prime):
        s = ideal_gate_schedule(seq_len, t_prime)
        return s.Z, s.R
    fails(capsys, "ideal_gate_schedule", delegates_schedule, "ran ideal_gate_schedule from the course's code")
    fails(capsys, "gru_classifier", GRUClassifier, "ran GRUClassifier.__init__ from the course's code")
    fails(capsys, "gru_step_backward", lambda p, c, d: step_backward(p, c, d, reset_after=False),
          "ran step_backward from the course's code (utils/gru_backward.py)")
    assert GRUScratch(3, 4).step(torch.zeros(2, 3), torch.zeros(2, 4)).H.shape == (2, 4)  # untouched
    assert ideal_gate_schedule(4, 1).Z.shape == (4, 1, 1)


def test_patching_the_checker_changes_nothing_graded(capsys, monkeypatch):
    monkeypatch.setattr(checks, "_close", lambda a, b: True)
    monkeypatch.setattr(checks, "CHECKS", {name: (lambda answer, **kw: "patched") for name in checks.CHECKS})
    fails(capsys, "gru_step", lambda gru, X, H: H, "H_new differs from the expected values")


def test_nan_and_inf_never_pass(capsys):
    fails(capsys, "gru_step", lambda gru, X, H: gru_step(gru, X, H) * float("nan"), "NaN or infinite")
    fails(capsys, "ideal_gate_schedule", lambda T, tp: tuple(g * float("inf") for g in schedule(T, tp)),
          "NaN or infinite")


def test_changing_the_given_weights_does_not_move_the_expected_values(capsys):
    def zeroes_then_answers(gru, X, H):
        for value in vars(gru).values():
            value.zero_()
        return gru_step(gru, X, H)
    fails(capsys, "gru_step", zeroes_then_answers, "H_new differs")


def test_hidden_variations_catch_an_answer_fitted_to_the_visible_shapes(capsys):
    def fitted(gru, X, H):
        return gru_step(gru, X, H) if X.shape[0] == 5 else H
    passes(capsys, "gru_step", fitted)
    fails(capsys, "gru_step", fitted, "H_new differs", **VARIATIONS["gru_step"])


# ---------- what the lines say ----------

@pytest.mark.parametrize("answer, fragment", [
    (lambda g, X, H: gru_step(g, X, H).T, "wrong shape for the returned H_new: expected (5, 4), got (4, 5)"),
    (lambda g, X, H: (gru_step(g, X, H),), "should be a tensor of shape (5, 4), got tuple"),
])
def test_wrong_shapes_and_types_say_expected_and_got(capsys, answer, fragment):
    fails(capsys, "gru_step", answer, fragment)


def gru_with(**change):
    def answer(gru, X, H):
        Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + change.get("b_z", gru.b_z))
        R = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
        if change.get("swap"):
            Z, R = R, Z
        if change.get("after"):
            H_tilde = torch.tanh(X @ gru.W_xh + R * (H @ gru.W_hh) + gru.b_h)
        else:
            H_tilde = torch.tanh(X @ gru.W_xh + (R * H) @ gru.W_hh + gru.b_h)
        return (1 - Z) * H + Z * H_tilde if change.get("reversed") else Z * H + (1 - Z) * H_tilde
    return answer


@pytest.mark.parametrize("change, fragment", [
    (dict(reversed=True), "the update gate is used the other way round"),
    (dict(after=True), "the reset gate multiplies H @ W_hh"),
    (dict(swap=True), "the gates are swapped"),
    (dict(b_z=0), "the bias b_z is missing"),
])
def test_gru_step_mistakes_are_named(capsys, change, fragment):
    fails(capsys, "gru_step", gru_with(**change), fragment)


def test_ablation_mistakes_are_named(capsys):
    plain = lambda gru, X, H: torch.tanh(X @ gru.W_xh + H @ gru.W_hh + gru.b_h)
    fails(capsys, "reset_only_step", plain, "the reset gate is not applied")
    fails(capsys, "update_only_step", plain, "the update gate is missing")
    fails(capsys, "reset_only_step", gru_step, "your code raised AttributeError")  # it has no Z


def test_schedule_mistakes_name_the_step(capsys):
    def keeps_at_t_prime(seq_len, t_prime):  # the published answer's mistake, with the zero state kept before t'
        return torch.ones(seq_len, 1, 1), torch.zeros(seq_len, 1, 1)

    def forgets_the_reset(seq_len, t_prime):
        Z, R = schedule(seq_len, t_prime)
        R[t_prime] = 0.5
        return Z, R
    fails(capsys, "ideal_gate_schedule", keeps_at_t_prime, "do not depend on x_3 at all")
    fails(capsys, "ideal_gate_schedule", forgets_the_reset, "when x_0 (before t') changes")
    fails(capsys, "ideal_gate_schedule", lambda T, tp: tuple(g.flatten() for g in schedule(T, tp)),
          "expected (8, 1, 1), got (8,)")
    fails(capsys, "ideal_gate_schedule", lambda T, tp: tuple(2 * g for g in schedule(T, tp)),
          "must lie in [0, 1]")
    fails(capsys, "ideal_gate_schedule", lambda T, tp: schedule(T, tp)[0], "should return a pair")


@pytest.mark.parametrize("mistake, fragment", [
    ("swap", "the gate and the candidate are swapped"), ("no_gate", "the gate z is missing"),
    ("no_epsilon", "epsilon is missing"), ("no_h", "the old state h is not added"),
    ("h_at_A", "applied as h @ A"), ("raw_W", "without antisymmetry"),
])
def test_antisymmetric_mistakes_are_named(capsys, mistake, fragment):
    def wrong(cell, x, h):
        gate_in, candidate_in = (x @ cell.weight_ih.T + cell.bias_ih).chunk(2, dim=-1)
        A = {"h_at_A": cell.recurrent_matrix().T, "raw_W": cell.weight_hh}.get(mistake, cell.recurrent_matrix())
        r = h @ A.T + cell.bias_hh
        if mistake == "swap":
            gate_in, candidate_in = candidate_in, gate_in
        z = 1.0 if mistake == "no_gate" else torch.sigmoid(gate_in + r)
        epsilon = 1.0 if mistake == "no_epsilon" else cell.epsilon
        return (0 if mistake == "no_h" else h) + epsilon * z * torch.tanh(candidate_in + r)
    fails(capsys, "gated_antisymmetric_step", wrong, fragment)


@pytest.mark.parametrize("forward, fragment", [
    (lambda self, X: self.head(self.states(X)[:, 0]), "the state after step 0; use the last step"),
    (lambda self, X: self.head(self.states(X)[-1, -1]).expand(X.shape[0], -1), "every row holds the last example's"),
    (lambda self, X: self.head(self.states(X)), "expected (4, 7), got (4, 6, 7)"),
])
def test_classifier_mistakes_are_named(capsys, forward, fragment):
    Wrong = type("Wrong", (Classifier,), {"forward": forward})
    fails(capsys, "gru_classifier", Wrong, fragment)


def test_a_classifier_without_its_head(capsys):
    class NoHead(nn.Module):
        def __init__(self, cell, num_classes):
            super().__init__()
    fails(capsys, "gru_classifier", NoHead, "needs a head nn.Linear(5, 7) in self.head")


@pytest.mark.parametrize("name, change, fragment", [
    ("dW_hh", lambda g, c: c["H"].T @ g["da_h"], "dW_hh is wrong"),
    ("dZ", lambda g, c: -g["dZ"], "dZ has the wrong sign"),
    ("da_r", lambda g, c: g["dR"], "da_r is wrong: it holds what dR should hold"),
    ("dH", None, "the dict lacks dH"),
])
def test_the_backward_check_names_the_wrong_gradient(capsys, name, change, fragment):
    def answer(p, cache, dH_new):
        g = step_gradients(p, cache, dH_new)
        if change is None:
            del g[name]
        else:
            g[name] = change(g, cache)
        return g
    fails(capsys, "gru_step_backward", answer, fragment)


def test_the_fused_step_must_make_one_matrix_product(capsys):
    def three_products(XW, H, W_h, b_hh):
        h = H.shape[1]
        Z = torch.sigmoid(XW[:, :h] + H @ W_h[:, :h])
        R = torch.sigmoid(XW[:, h:2 * h] + torch.mm(H, W_h[:, h:2 * h]))
        return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + R * (torch.matmul(H, W_h[:, 2 * h:]) + b_hh))

    def reset_before(XW, H, W_h, b_hh):
        h = H.shape[1]
        HW = H @ W_h
        Z, R = torch.sigmoid(XW[:, :2 * h] + HW[:, :2 * h]).chunk(2, dim=1)
        return Z * H + (1 - Z) * torch.tanh(XW[:, 2 * h:] + (R * H) @ W_h[:, 2 * h:] + b_hh)
    fails(capsys, "fused_reset_after_step", three_products, "your step made 3 matrix products")
    fails(capsys, "fused_reset_after_step", reset_before, "the reset gate is applied before the matmul")


# ---------- the exercises of chapters 01, 02, 04, 06 and 07: what the lines say ----------

def gates_with(**change):
    """gate_weights with the pre-activations of some actions changed: ``write=(update, reset)``, ..."""
    table = {**GATES, **change}
    return lambda actions, h: (torch.tensor([[table[a][0]] * h for a in actions]),
                               torch.tensor([[table[a][1]] * h for a in actions]))


@pytest.mark.parametrize("answer, fragment", [
    (gates_with(skip=(-40.0, 0.0)), "symbol 2 ('skip') gets Z = 0 in unit 0: Z = 0 replaces the state by the candidate; "
                                     "in d2l's convention Z = 1 keeps the old state"),
    (gates_with(write=(40.0, 40.0)), "symbol 1 ('write') gets Z = 1 in unit 0: Z = 1 keeps the old state"),
    (gates_with(write=(-40.0, -40.0)), "symbol 1 ('write') gets R = 0 in unit 0: R = 0 hides the old state"),
    (gates_with(reset=(-40.0, 40.0)), "symbol 0 ('reset') gets R = 1 in unit 0: R = 1 lets the candidate read"),
    (gates_with(reset=(40.0, -40.0)), "symbol 0 ('reset') gets Z = 1 in unit 0: Z = 1 keeps the old state; a reset"),
    (gates_with(write=(-5.0, 5.0)), "symbol 1 ('write') gets Z = 0.00669285 in unit 0, not within 1e-06 of 0: a sigmoid "
                                    "reaches 0 or 1 only in the limit"),
    (lambda actions, h: gate_weights(actions, h)[::-1], "the pair is swapped: return (W_xz, W_xr)"),
    (lambda actions, h: tuple(w.T for w in gate_weights(actions, h)), "wrong shape for W_xz: expected (4, 3), got (3, 4)"),
    (lambda actions, h: gate_weights(actions, h)[0], "should return a pair (W_xz, W_xr), got Tensor"),
    (lambda actions, h: {"W_xz": gate_weights(actions, h)[0]}, "the dict lacks W_xr"),
    (lambda actions, h: [[1.0] * h, [2.0] * h], "W_xz should be a tensor (or a list of lists) of shape (4, 3)"),
    (lambda actions, h: tuple(w * float("inf") for w in gate_weights(actions, h)), "NaN or infinite"),
])
def test_hand_set_gate_mistakes_are_named(capsys, answer, fragment):
    fails(capsys, "hand_set_gates", answer, fragment)


def test_an_unsaturated_gate_in_one_unit_is_found(capsys):
    def one_weak_unit(actions, h):
        W_xz, W_xr = gate_weights(actions, h)
        W_xz[2, h - 1] = 10.0  # the skip's update gate, sigma(10) = 0.99995, in the last unit
        return W_xz, W_xr
    fails(capsys, "hand_set_gates", one_weak_unit, "symbol 2 ('skip') gets Z = 0.999955 in unit 2, not within 1e-06 of 1")


def reset_after_with(**change):
    def answer(gru, X, H):
        Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
        R = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
        if change.get("before"):
            hidden = (R * H) @ gru.W_hh + gru.b_hh
        elif change.get("outside"):
            hidden = R * (H @ gru.W_hh) + gru.b_hh
        else:
            hidden = R * (H @ gru.W_hh + (0 if change.get("no_b_hh") else gru.b_hh))
        H_tilde = torch.tanh(X @ gru.W_xh + gru.b_h + hidden)
        return (1 - Z) * H + Z * H_tilde if change.get("reversed") else Z * H + (1 - Z) * H_tilde
    return answer


@pytest.mark.parametrize("answer, fragment", [
    (reset_after_with(before=True), "the reset gate scales H before the matmul (d2l's reset-before form)"),
    (reset_after_with(outside=True), "b_hh is added outside the reset: it belongs inside"),
    (reset_after_with(no_b_hh=True), "b_hh is missing"),
    (reset_after_with(reversed=True), "the update gate is used the other way round"),
    (gru_step, "the reset gate scales H before the matmul"),  # d2l's step, b_hh ignored: no named case is closer
    (lambda gru, X, H: reset_after_step(gru, X, H)[:, :-1], "expected (5, 4), got (5, 3)"),
])
def test_reset_after_mistakes_are_named(capsys, answer, fragment):
    fails(capsys, "reset_after_gru_step", answer, fragment if answer is not gru_step else "H_new differs")


def unpacked_with(change):
    def answer(gru):
        out = unpack_gru_weights(gru)
        change(out, gru, gru.hidden_size)
        return out
    return answer


def swap_r_z(out, gru, h):
    for kind in ("x", "h"):
        out[f"W_{kind}r"], out[f"W_{kind}z"] = out[f"W_{kind}z"], out[f"W_{kind}r"]


@pytest.mark.parametrize("change, fragment", [
    (swap_r_z, "W_xr holds what W_xz should hold: nn.GRU stacks its rows in the order r, z, n"),
    (lambda out, gru, h: out.update(W_xh=gru.weight_ih_l0[2 * h:]), "wrong shape for W_xh: expected (5, 4), got (4, 5); "
                                                                     "d2l's weights are the transposes"),
    (lambda out, gru, h: out.update(W_hz=gru.weight_hh_l0[h:2 * h]), "W_hz is not transposed"),
    (lambda out, gru, h: out.update(b_z=gru.bias_ih_l0[h:2 * h]), "b_z holds one of the gate's two biases: they are "
                                                                  "added, b_z = b_iz + b_hz"),
    (lambda out, gru, h: out.update(b_h=gru.bias_ih_l0[2 * h:] + gru.bias_hh_l0[2 * h:]), "b_h adds b_hn, which sits "
                                                                                         "inside the reset"),
    (lambda out, gru, h: out.update(b_hh=gru.bias_hh_l0), "returned a Parameter, a subclass of torch.Tensor: return "
                                                          "plain tensors: a parameter of the layer itself is one of "
                                                          "PyTorch's stacked (3h) tensors"),
    (lambda out, gru, h: out.update(b_hh=gru.bias_hh_l0 * 1), "wrong shape for b_hh: expected (4,), got (12,)"),
    (lambda out, gru, h: out.pop("b_hh"), "the dict lacks b_hh"),
    (lambda out, gru, h: out.update(W_hh=out["W_hh"] * 2), "W_hh is wrong: W_hh differs from the expected values"),
])
def test_unpacking_mistakes_are_named(capsys, change, fragment):
    fails(capsys, "unpack_gru_weights", unpacked_with(change), fragment)


def test_unpacking_must_return_a_dict(capsys):
    fails(capsys, "unpack_gru_weights", lambda gru: list(unpack_gru_weights(gru).values()), "should return a dict")


def test_unpacking_leaves_the_layer_it_is_given_alone_or_fails(capsys):
    def zeroes_then_reads(gru):
        with torch.no_grad():
            for parameter in gru.parameters():
                parameter.zero_()
        return unpack_gru_weights(gru)
    fails(capsys, "unpack_gru_weights", zeroes_then_reads, "differs from the expected values")


@pytest.mark.parametrize("answer, fragment", [
    (lambda losses, counts: losses.exp().mean(), "the mean of the minibatches' perplexities"),
    (lambda losses, counts: losses.mean().exp(), "exp of the unweighted mean loss"),
    (lambda losses, counts: (losses.exp() * counts).sum() / counts.sum(), "the token-weighted mean of the minibatches' "
                                                                          "perplexities"),
    (lambda losses, counts: (losses * counts).sum() / counts.sum(), "the mean cross-entropy per token, not its "
                                                                    "exponential"),
    (lambda losses, counts: 2 ** ((losses * counts).sum() / counts.sum()), "2 to the power of the mean loss"),
    (lambda losses, counts: (losses * counts).sum().exp(), "is inf, not a finite number (the exponential of a summed "
                                                           "loss overflows"),
    (lambda losses, counts: torch.exp(losses * counts / counts.sum()), "should be a number, got Tensor of shape (9,)"),
    (lambda losses, counts: str(text_perplexity(losses, counts)), "should be a number, got str"),
    (lambda losses, counts: True, "should be a number, got bool"),
    (lambda losses, counts: text_perplexity(losses, counts) * 1.001, "on a text of 9 minibatches the perplexity is"),
])
def test_perplexity_mistakes_are_named(capsys, answer, fragment):
    fails(capsys, "text_perplexity", answer, fragment)


def budget_with(change):
    def answer(kind, d, h):
        count, width = parameter_budget(kind, d, h)
        return change(kind, d, h, count, width)
    return answer


@pytest.mark.parametrize("answer, fragment", [
    (budget_with(lambda k, d, h, c, w: (BLOCKS[k] * (d * h + h * h + h), w)),
     "for GRU, d=28, h=32 the count is 5856, expected 5952: one bias vector per block is d2l's scratch count"),
    (budget_with(lambda k, d, h, c, w: (BLOCKS[k] * (d * h + h * h), w)), "the biases are missing"),
    (budget_with(lambda k, d, h, c, w: (BLOCKS[k] * (d * h + 2 * h), w)), "the hidden-to-hidden weights (h x h per "
                                                                          "block) are missing"),
    (budget_with(lambda k, d, h, c, w: (4 * c // BLOCKS[k], w)), "that counts 4 block(s) of weights and biases; the GRU "
                                                                 "cell has 3"),
    (budget_with(lambda k, d, h, c, w: (c, w + 1)), "for GRU, d=28, h=32 an nn.RNN of 64 units has 6016 parameters, "
                                                    "more than 5952"),
    (budget_with(lambda k, d, h, c, w: (c, w - 1)), "an nn.RNN of 63 units still fits (5859 <= 5952 parameters): return "
                                                    "the largest width"),
    (budget_with(lambda k, d, h, c, w: (c, 0)), "the width is 0: an nn.RNN needs at least one unit"),
    (budget_with(lambda k, d, h, c, w: (c, w + 0.5)), "the width for GRU, d=28, h=32 should be a whole number, got 63.5"),
    (budget_with(lambda k, d, h, c, w: c), "should return a pair (count, width), got int"),
    (budget_with(lambda k, d, h, c, w: (c, w, h)), "should return a pair (count, width), got 3 values"),
])
def test_budget_mistakes_are_named(capsys, answer, fragment):
    fails(capsys, "parameter_budget", answer, fragment)


def test_the_closest_width_is_not_the_largest_that_fits(capsys):
    def closest(kind, d, h):  # nearest count rather than the largest one that fits: right only by chance
        count = parameter_budget(kind, d, h)[0]
        return count, min(range(1, 4 * h + d), key=lambda w: abs(w * (d + w + 2) - count))
    fails(capsys, "parameter_budget", closest, "more than")


def test_checks_that_build_torch_layers_leave_the_random_state_alone(capsys):
    for name in ("unpack_gru_weights", "hand_set_gates", "text_perplexity"):
        torch.manual_seed(5)
        expected = torch.rand(3)
        torch.manual_seed(5)
        check(name, CORRECT[name])
        assert torch.equal(torch.rand(3), expected), name
    capsys.readouterr()
