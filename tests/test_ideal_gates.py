import pytest
import torch

from utils.gru import GRUScratch
from utils.ideal_gates import ideal_gate_schedule, marked_recall_task, perturbation_effects
from utils.training import seed_everything


def random_gru(num_inputs=3, num_hiddens=4):
    seed_everything(0)
    return GRUScratch(num_inputs, num_hiddens, sigma=1.0).double()


def test_schedule_resets_and_writes_at_t_prime_then_keeps():
    s = ideal_gate_schedule(6, 2)
    assert s.Z.shape == s.R.shape == s.Z_free.shape == s.R_free.shape == (6, 1, 1)
    assert s.Z.dtype == torch.float64 and s.Z_free.dtype == torch.bool
    assert s.Z[2].item() == 0 and s.R[2].item() == 0
    assert (s.Z[3:] == 1).all()
    assert s.Z_free.flatten().tolist() == [True, True, False, False, False, False]
    assert s.R_free.flatten().tolist() == [True, True, False, True, True, True]


def test_filled_replaces_only_free_entries():
    s = ideal_gate_schedule(5, 1)
    Z, R = s.filled(torch.full((5, 2, 3), 0.25, dtype=torch.float64), torch.full((5, 2, 3), 0.75, dtype=torch.float64))
    assert Z.shape == R.shape == (5, 2, 3)
    assert (Z[0] == 0.25).all() and (Z[1] == 0).all() and (Z[2:] == 1).all()
    assert (R[0] == 0.75).all() and (R[1] == 0).all() and (R[2:] == 0.75).all()


@pytest.mark.parametrize("seq_len, t_prime, error", [(1, 0, ValueError), (5, 4, ValueError), (5, -1, ValueError),
                                                     (5, 1.0, TypeError), (True, 0, TypeError)])
def test_schedule_rejects_impossible_steps(seq_len, t_prime, error):
    with pytest.raises(error):
        ideal_gate_schedule(seq_len, t_prime)


@pytest.mark.parametrize("t_prime", [0, 2, 5])
def test_states_after_t_prime_depend_on_x_t_prime_only(t_prime):
    T, B = 7, 5
    gru = random_gru()
    torch.manual_seed(1)
    inputs, H0 = torch.randn(T, B, 3, dtype=torch.float64), torch.randn(B, 4, dtype=torch.float64)
    Z, R = ideal_gate_schedule(T, t_prime).filled(torch.rand(T, B, 4, dtype=torch.float64),
                                                   torch.rand(T, B, 4, dtype=torch.float64))
    effects = perturbation_effects(gru, inputs, Z=Z, R=R, H=H0)
    assert effects.shape == (T, T)
    later = effects[:, t_prime:]
    assert (later[t_prime] > 1e-3).all()
    assert (torch.cat([later[:t_prime], later[t_prime + 1:]]) == 0).all()


def test_perturbation_effects_follow_the_gates():
    """Z = 1 everywhere: the state never moves. Z = R = 0 everywhere: H_t = tanh(x_t W_xh + b_h), so only the
    diagonal moves. The computed gates: an input moves its own state and every later one, never an earlier one."""
    T, B = 5, 3
    gru = random_gru()
    inputs = torch.randn(T, B, 3, dtype=torch.float64)
    ones, zeros = torch.ones(T, 1, 1, dtype=torch.float64), torch.zeros(T, 1, 1, dtype=torch.float64)
    assert (perturbation_effects(gru, inputs, Z=ones, R=ones) == 0).all()
    diagonal = perturbation_effects(gru, inputs, Z=zeros, R=zeros)
    assert (diagonal.diagonal() > 0).all() and (diagonal - torch.diag(diagonal.diagonal()) == 0).all()
    free = perturbation_effects(gru, inputs)
    assert (free.triu() > 0).equal(torch.ones(T, T, dtype=torch.bool).triu()) and (free.tril(-1) == 0).all()


def test_perturbation_effects_are_seeded_and_scaled():
    gru, inputs = random_gru(), torch.randn(4, 2, 3, dtype=torch.float64)
    zeros = torch.zeros(4, 1, 1, dtype=torch.float64)
    assert perturbation_effects(gru, inputs, seed=3).equal(perturbation_effects(gru, inputs, seed=3))
    small = perturbation_effects(gru, inputs, Z=zeros, R=zeros, scale=1e-6).diagonal()
    assert (small < 1e-5).all() and (small > 0).all()


def test_perturbation_effects_reject_bad_inputs():
    gru = random_gru()
    with pytest.raises(ValueError, match="time-major"):
        perturbation_effects(gru, torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="time-major"):
        perturbation_effects(gru, [[1.0]])
    with pytest.raises(ValueError, match="scale must be positive"):
        perturbation_effects(gru, torch.randn(4, 2, 3, dtype=torch.float64), scale=0)


def test_marked_recall_task_marks_t_prime_and_targets_its_symbol():
    task = marked_recall_task(50, 7, 3, num_symbols=5, seed=1)
    assert task.X.shape == (50, 7, 6) and task.kind == "classification" and task.num_outputs == 5
    assert (task.X[:, :, -1].sum(dim=0) == torch.tensor([0, 0, 0, 50, 0, 0, 0])).all()
    assert (task.X[:, :, :5].sum(dim=-1) == 1).all()
    assert task.y.equal(task.X[:, 3, :5].argmax(dim=-1))
    with pytest.raises(ValueError, match="position must be in"):
        marked_recall_task(10, 5, 5)
