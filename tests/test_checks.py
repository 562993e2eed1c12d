"""utils.checks: every check passes on a correct answer (written here from the equations), fails with one line
that says what is wrong, and cannot be passed by delegating to the course's code or patching the checker."""
import pytest
import torch
from torch import nn

from utils import checks
from utils.checks import check
from utils.classifier import GRUClassifier
from utils.gru import GRUScratch
from utils.gru_backward import step_backward
from utils.ideal_gates import ideal_gate_schedule


def one_line(capsys):
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def assert_passes(capsys, passed):
    line = one_line(capsys)
    assert passed is True and line.startswith("✓ "), line


def assert_fails(capsys, passed, *fragments):
    line = one_line(capsys)
    assert passed is False and line.startswith("✗ "), line
    for fragment in fragments:
        assert fragment in line, line


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


CORRECT = {"gru_step": gru_step, "fused_reset_after_step": fused_step, "reset_only_step": reset_only_step, "update_only_step": update_only_step,
           "ideal_gate_schedule": schedule, "gated_antisymmetric_step": antisymmetric_step,
           "gru_classifier": Classifier, "gru_step_backward": step_gradients}
VARIATIONS = {"gru_step": dict(seed=5, batch=7, num_inputs=2, num_hiddens=6),
              "reset_only_step": dict(seed=1, batch=1), "update_only_step": dict(seed=2, num_hiddens=9),
              "ideal_gate_schedule": dict(seed=3, cases=((10, 9), (3, 1))),
              "gated_antisymmetric_step": dict(seed=4, batch=2, epsilon=0.05, gamma=0.0),
              "gru_classifier": dict(seed=6, batch=3, steps=2, num_classes=2),
              "gru_step_backward": dict(seed=7, batch=2, num_inputs=5, num_hiddens=3),
              "fused_reset_after_step": dict(seed=8, batch=2, num_hiddens=7)}


def test_every_check_has_a_correct_answer_here():
    assert set(CORRECT) == set(checks.CHECKS) == set(VARIATIONS)


@pytest.mark.parametrize("name", CORRECT)
def test_every_check_passes_a_correct_answer_at_every_variation(capsys, name):
    assert_passes(capsys, check(name, CORRECT[name]))
    assert_passes(capsys, check(name, CORRECT[name], **VARIATIONS[name]))


def test_the_second_exact_schedule_family_passes(capsys):
    assert_passes(capsys, check("ideal_gate_schedule", schedule_kept_zero))


@pytest.mark.parametrize("name", [n for n in CORRECT if n != "gru_classifier"])
def test_a_stub_is_not_implemented_yet(capsys, name):
    assert_fails(capsys, check(name, not_implemented), "not implemented yet (a hint)")


def test_a_classifier_stub_is_not_implemented_yet(capsys):
    class Stub(Classifier):
        def forward(self, X):
            raise NotImplementedError
    assert_fails(capsys, check("gru_classifier", Stub), "gru_classifier: not implemented yet")


def test_an_unknown_check_is_an_error():
    with pytest.raises(ValueError, match="no check 'gru'"):
        check("gru", gru_step)


def test_another_exception_is_reported_by_type_and_message(capsys):
    def broken(gru, X, H):
        raise ValueError("bad shapes")
    assert_fails(capsys, check("gru_step", broken), "your code raised ValueError: bad shapes")


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
    assert_fails(capsys, check("gru_step", delegates), "GRUScratch.step refuses to run while an answer is checked")
    assert_fails(capsys, check("gru_step", lambda gru, X, H: gru.step(X, H).H), "has no attribute 'step'")

    def delegates_schedule(seq_len, t_prime):
        s = ideal_gate_schedule(seq_len, t_prime)
        return s.Z, s.R
    assert_fails(capsys, check("ideal_gate_schedule", delegates_schedule), "ideal_gate_schedule refuses to run")
    assert_fails(capsys, check("gru_classifier", GRUClassifier), "GRUClassifier.forward refuses to run")
    assert_fails(capsys, check("gru_step_backward", lambda p, c, d: step_backward(p, c, d, reset_after=False)),
                 "step_backward refuses to run")
    assert GRUScratch(3, 4).step(torch.zeros(2, 3), torch.zeros(2, 4)).H.shape == (2, 4)  # restored
    assert ideal_gate_schedule(4, 1).Z.shape == (4, 1, 1)


def test_patching_the_checker_changes_nothing_graded(capsys, monkeypatch):
    monkeypatch.setattr(checks, "_close", lambda a, b: True)
    monkeypatch.setattr(checks, "CHECKS", {name: (lambda answer, **kw: "patched") for name in checks.CHECKS})
    assert_fails(capsys, check("gru_step", lambda gru, X, H: H), "H_new differs from the expected values")


def test_nan_and_inf_never_pass(capsys):
    assert_fails(capsys, check("gru_step", lambda gru, X, H: gru_step(gru, X, H) * float("nan")), "NaN or infinite")
    assert_fails(capsys, check("ideal_gate_schedule", lambda T, tp: tuple(g * float("inf") for g in schedule(T, tp))),
                 "NaN or infinite")


def test_changing_the_given_weights_does_not_move_the_expected_values(capsys):
    def zeroes_then_answers(gru, X, H):
        for value in vars(gru).values():
            value.zero_()
        return gru_step(gru, X, H)
    assert_fails(capsys, check("gru_step", zeroes_then_answers), "H_new differs")


def test_hidden_variations_catch_an_answer_fitted_to_the_visible_shapes(capsys):
    def fitted(gru, X, H):
        return gru_step(gru, X, H) if X.shape[0] == 5 else H
    assert_passes(capsys, check("gru_step", fitted))
    assert_fails(capsys, check("gru_step", fitted, **VARIATIONS["gru_step"]), "H_new differs")


# ---------- what the lines say ----------

@pytest.mark.parametrize("answer, fragment", [
    (lambda g, X, H: gru_step(g, X, H).T, "wrong shape for the returned H_new: expected (5, 4), got (4, 5)"),
    (lambda g, X, H: (gru_step(g, X, H),), "should be a tensor of shape (5, 4), got tuple"),
])
def test_wrong_shapes_and_types_say_expected_and_got(capsys, answer, fragment):
    assert_fails(capsys, check("gru_step", answer), fragment)


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
    assert_fails(capsys, check("gru_step", gru_with(**change)), fragment)


def test_ablation_mistakes_are_named(capsys):
    plain = lambda gru, X, H: torch.tanh(X @ gru.W_xh + H @ gru.W_hh + gru.b_h)
    assert_fails(capsys, check("reset_only_step", plain), "the reset gate is not applied")
    assert_fails(capsys, check("update_only_step", plain), "the update gate is missing")
    assert_fails(capsys, check("reset_only_step", gru_step), "your code raised AttributeError")  # it has no Z


def test_schedule_mistakes_name_the_step(capsys):
    def keeps_at_t_prime(seq_len, t_prime):  # the published answer's mistake, with the zero state kept before t'
        return torch.ones(seq_len, 1, 1), torch.zeros(seq_len, 1, 1)

    def forgets_the_reset(seq_len, t_prime):
        Z, R = schedule(seq_len, t_prime)
        R[t_prime] = 0.5
        return Z, R
    assert_fails(capsys, check("ideal_gate_schedule", keeps_at_t_prime), "do not depend on x_3 at all")
    assert_fails(capsys, check("ideal_gate_schedule", forgets_the_reset), "when x_0 (before t') changes")
    assert_fails(capsys, check("ideal_gate_schedule", lambda T, tp: tuple(g.flatten() for g in schedule(T, tp))),
                 "expected (8, 1, 1), got (8,)")
    assert_fails(capsys, check("ideal_gate_schedule", lambda T, tp: tuple(2 * g for g in schedule(T, tp))),
                 "must lie in [0, 1]")
    assert_fails(capsys, check("ideal_gate_schedule", lambda T, tp: schedule(T, tp)[0]), "should return a pair")


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
    assert_fails(capsys, check("gated_antisymmetric_step", wrong), fragment)


@pytest.mark.parametrize("forward, fragment", [
    (lambda self, X: self.head(self.states(X)[:, 0]), "the state after step 0; use the last step"),
    (lambda self, X: self.head(self.states(X)[-1, -1]).expand(X.shape[0], -1), "every row holds the last example's"),
    (lambda self, X: self.head(self.states(X)), "expected (4, 7), got (4, 6, 7)"),
])
def test_classifier_mistakes_are_named(capsys, forward, fragment):
    Wrong = type("Wrong", (Classifier,), {"forward": forward})
    assert_fails(capsys, check("gru_classifier", Wrong), fragment)


def test_a_classifier_without_its_head(capsys):
    class NoHead(nn.Module):
        def __init__(self, cell, num_classes):
            super().__init__()
    assert_fails(capsys, check("gru_classifier", NoHead), "needs a head nn.Linear(5, 7) in self.head")


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
    assert_fails(capsys, check("gru_step_backward", answer), fragment)


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
    assert_fails(capsys, check("fused_reset_after_step", three_products), "your step made 3 matrix products")
    assert_fails(capsys, check("fused_reset_after_step", reset_before), "the reset gate is applied before the matmul")
