"""utils.checks: every check passes on the reference, and fails with one line that says what is wrong."""
import pytest
import torch
from torch import nn

from utils import checks
from utils.classifier import GRUClassifier


def one_line(capsys):
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def assert_fails(capsys, passed, *fragments):
    line = one_line(capsys)
    assert passed is False and line.startswith("✗ "), line
    for fragment in fragments:
        assert fragment in line, line


def not_implemented(*args):
    raise NotImplementedError("a hint")


# ---------- reference implementations, written independently of the notebooks' solutions ----------

def gru_reference(gru, X, H):
    return gru.step(X, H).H


def schedule_reference(seq_len, t_prime):
    from utils.ideal_gates import ideal_gate_schedule
    schedule = ideal_gate_schedule(seq_len, t_prime)
    return schedule.Z, schedule.R


def antisymmetric_reference(cell, x, h):
    return cell.step(x, h)


class ClassifierReference(GRUClassifier):
    def forward(self, X):
        return super().forward(X)


STEP_CHECKS = [checks.check_gru_step, checks.check_reset_only_step, checks.check_update_only_step]


@pytest.mark.parametrize("check, reference", [
    *[(check, gru_reference) for check in STEP_CHECKS],
    (checks.check_ideal_gate_schedule, schedule_reference),
    (checks.check_gated_antisymmetric_step, antisymmetric_reference),
    (checks.check_gru_classifier, ClassifierReference),
])
def test_every_check_passes_on_the_reference(capsys, check, reference):
    passed = check(reference)
    line = one_line(capsys)
    assert passed is True and line.startswith("✓ "), line


@pytest.mark.parametrize("check", [*STEP_CHECKS, checks.check_ideal_gate_schedule,
                                   checks.check_gated_antisymmetric_step])
def test_a_stub_is_not_implemented_yet(capsys, check):
    assert_fails(capsys, check(not_implemented), "not implemented yet (a hint)")


def test_a_classifier_stub_is_not_implemented_yet(capsys):
    def forward(self, X):
        raise NotImplementedError

    assert_fails(capsys, checks.check_gru_classifier(classifier(forward)), "gru_classifier: not implemented yet")


def test_another_exception_is_reported_by_type_and_message(capsys):
    def broken(gru, X, H):
        raise ValueError("bad shapes")
    assert_fails(capsys, checks.check_gru_step(broken), "your code raised ValueError: bad shapes")


def test_the_checks_leave_the_random_state_alone(capsys):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    checks.check_gru_step(gru_reference)
    assert torch.equal(torch.rand(3), expected)


# ---------- the GRU steps (chapters 03 and 08) ----------

def test_wrong_shape_says_expected_and_got(capsys):
    assert_fails(capsys, checks.check_gru_step(lambda gru, X, H: gru.step(X, H).H.T),
                 "wrong shape", "expected (5, 4), got (4, 5)")


def test_not_a_tensor(capsys):
    assert_fails(capsys, checks.check_gru_step(lambda gru, X, H: gru.step(X, H)),
                 "should be a tensor of shape (5, 4), got GRUStep")


def test_swapped_interpolation_is_named(capsys):
    def swapped(gru, X, H):
        s = gru.step(X, H)
        return (1 - s.Z) * H + s.Z * s.H_tilde
    assert_fails(capsys, checks.check_gru_step(swapped), "the update gate is used the other way round")


def test_reset_after_the_matmul_is_named(capsys):
    def after(gru, X, H):
        s = gru.step(X, H)
        H_tilde = torch.tanh(X @ gru.W_xh + s.R * (H @ gru.W_hh) + gru.b_h)
        return s.Z * H + (1 - s.Z) * H_tilde
    assert_fails(capsys, checks.check_gru_step(after), "the reset gate multiplies H @ W_hh")


def test_swapped_gates_are_named(capsys):
    def swapped(gru, X, H):
        Z = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
        R = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
        H_tilde = torch.tanh(X @ gru.W_xh + (R * H) @ gru.W_hh + gru.b_h)
        return Z * H + (1 - Z) * H_tilde
    assert_fails(capsys, checks.check_gru_step(swapped), "the gates are swapped")


def test_a_forgotten_bias_is_reported_as_a_difference(capsys):
    def no_bias(gru, X, H):
        Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz)
        R = torch.sigmoid(X @ gru.W_xr + H @ gru.W_hr + gru.b_r)
        return Z * H + (1 - Z) * torch.tanh(X @ gru.W_xh + (R * H) @ gru.W_hh + gru.b_h)
    assert_fails(capsys, checks.check_gru_step(no_bias), "H_new differs from the reference in")


def test_the_full_gru_is_not_a_reset_only_step(capsys):
    # the reset-only GRUScratch has no update gate: a step that uses one raises AttributeError
    def full(gru, X, H):
        Z = torch.sigmoid(X @ gru.W_xz + H @ gru.W_hz + gru.b_z)
        return Z * H
    assert_fails(capsys, checks.check_reset_only_step(full), "your code raised AttributeError")


def test_update_only_with_the_interpolation_forgotten(capsys):
    def candidate_only(gru, X, H):
        return torch.tanh(X @ gru.W_xh + H @ gru.W_hh + gru.b_h)
    assert_fails(capsys, checks.check_update_only_step(candidate_only), "the update gate is missing")


def test_reset_only_without_the_reset(capsys):
    def plain_rnn(gru, X, H):
        return torch.tanh(X @ gru.W_xh + H @ gru.W_hh + gru.b_h)
    assert_fails(capsys, checks.check_reset_only_step(plain_rnn), "the reset gate is not applied")


# ---------- the ideal schedule (chapter 05) ----------

def test_the_free_entries_may_hold_anything_in_0_1(capsys):
    def filled(seq_len, t_prime):
        Z, R = schedule_reference(seq_len, t_prime)
        steps = torch.arange(seq_len).reshape(-1, 1, 1)
        return torch.where(steps < t_prime, 0.9, Z), torch.where(steps != t_prime, 0.1, R)
    assert checks.check_ideal_gate_schedule(filled) is True
    assert one_line(capsys).startswith("✓ ")


def test_the_published_mistake_is_reported_with_its_step(capsys):
    def keeps_at_t_prime(seq_len, t_prime):
        Z, R = schedule_reference(seq_len, t_prime)
        Z = Z.clone()
        Z[t_prime] = 1.0
        return Z, R
    assert_fails(capsys, checks.check_ideal_gate_schedule(keeps_at_t_prime),
                 "Z at step 3 (t', seq_len=8, t'=3) should be 0, got 1")


def test_schedule_shape_and_range_and_pair(capsys):
    assert_fails(capsys, checks.check_ideal_gate_schedule(
        lambda T, tp: tuple(g.flatten() for g in schedule_reference(T, tp))), "expected (8, 1, 1), got (8,)")
    assert_fails(capsys, checks.check_ideal_gate_schedule(
        lambda T, tp: tuple(2 * g for g in schedule_reference(T, tp))), "must lie in [0, 1]")
    assert_fails(capsys, checks.check_ideal_gate_schedule(
        lambda T, tp: schedule_reference(T, tp)[0]), "should return a pair (Z, R), got Tensor")


# ---------- the gated antisymmetric step (chapter 09) ----------

def antisymmetric_parts(cell, x, h):
    gate_in, candidate_in = (x @ cell.weight_ih.T + cell.bias_ih).chunk(2, dim=-1)
    return gate_in, candidate_in, cell.recurrent_matrix()


def test_an_independent_antisymmetric_step_passes(capsys):
    def written_out(cell, x, h):
        gate_in, candidate_in, A = antisymmetric_parts(cell, x, h)
        r = h @ A.T + cell.bias_hh
        return h + cell.epsilon * torch.sigmoid(gate_in + r) * torch.tanh(candidate_in + r)
    assert checks.check_gated_antisymmetric_step(written_out) is True
    assert one_line(capsys).startswith("✓ ")


@pytest.mark.parametrize("mistake, fragment", [
    ("swap", "the gate and the candidate are swapped"),
    ("no_gate", "the gate z is missing"),
    ("no_epsilon", "epsilon is missing"),
    ("no_h", "the old state h is not added"),
    ("h_at_A", "applied as h @ A"),
    ("raw_W", "without antisymmetry"),
])
def test_antisymmetric_mistakes_are_named(capsys, mistake, fragment):
    def wrong(cell, x, h):
        gate_in, candidate_in, A = antisymmetric_parts(cell, x, h)
        A = {"h_at_A": A.T, "raw_W": cell.weight_hh}.get(mistake, A)
        r = h @ A.T + cell.bias_hh
        if mistake == "swap":
            gate_in, candidate_in = candidate_in, gate_in
        z = 1.0 if mistake == "no_gate" else torch.sigmoid(gate_in + r)
        epsilon = 1.0 if mistake == "no_epsilon" else cell.epsilon
        return (0 if mistake == "no_h" else h) + epsilon * z * torch.tanh(candidate_in + r)
    assert_fails(capsys, checks.check_gated_antisymmetric_step(wrong), fragment)


# ---------- the classifier (chapter 11) ----------

def classifier(forward):
    class Model(nn.Module):
        def __init__(self, cell, num_classes):
            super().__init__()
            self.cell, self.head = cell, nn.Linear(cell.hidden_size, num_classes)

        def states(self, X):
            return GRUClassifier(self.cell, 2).states(X)

    Model.forward = forward
    return Model


def test_the_first_step_is_named(capsys):
    model = classifier(lambda self, X: self.head(self.states(X)[:, 0]))
    assert_fails(capsys, checks.check_gru_classifier(model), "the state after step 0; use the last step")


def test_the_batch_index_confusion_is_named(capsys):
    model = classifier(lambda self, X: self.head(self.states(X)[-1, -1]).expand(X.shape[0], -1))
    assert_fails(capsys, checks.check_gru_classifier(model), "every row holds the last example's logits")


def test_logits_for_every_step_are_a_wrong_shape(capsys):
    model = classifier(lambda self, X: self.head(self.states(X)))
    assert_fails(capsys, checks.check_gru_classifier(model), "expected (4, 7), got (4, 6, 7)")


def test_a_classifier_without_its_head(capsys):
    class NoHead(nn.Module):
        def __init__(self, cell, num_classes):
            super().__init__()

    assert_fails(capsys, checks.check_gru_classifier(NoHead), "needs a head nn.Linear(5, 7) in self.head")
