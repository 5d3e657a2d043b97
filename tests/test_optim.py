"""Projected gradient descent with backtracking and growth, on problems with known answers."""

from __future__ import annotations

import pytest
import torch

from panda_lightning.factorization import orthogonality_error, project_orthonormal_
from panda_lightning.optim import ProjectedGradientDescent


def _quadratic(x, target, curvature):
    def closure():
        x.grad = curvature * (x.detach() - target)
        return 0.5 * curvature * (x.detach() - target).square().sum()

    return closure


def test_converges_to_the_projection_of_the_unconstrained_minimum():
    x = torch.nn.Parameter(torch.ones(3))
    target = torch.tensor([2.0, -1.0, 0.5])
    optimizer = ProjectedGradientDescent([x], lr=0.5, projection="nonnegative")
    for _ in range(60):
        optimizer.step(_quadratic(x, target, curvature=1.0))
    torch.testing.assert_close(x.detach(), torch.tensor([2.0, 0.0, 0.5]))
    assert optimizer.step_size == 0.5  # grew back to lr after each step, never past it


def test_too_large_a_step_is_halved_until_the_objective_falls_sufficiently():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=10.0, growth=1.0)
    losses = [optimizer.step(_quadratic(x, torch.zeros(1), curvature=4.0)).item() for _ in range(20)]
    # Curvature 4: the Armijo test with constant 1e-4 accepts steps up to (2 - 2e-4) / 4; 10 is
    # halved to 0.3125, and with growth 1 it stays there.
    assert optimizer.step_size == 0.3125
    assert all(later <= earlier for earlier, later in zip(losses, losses[1:]))
    assert abs(x.item()) < 1e-6


def test_a_step_size_halved_by_one_hard_step_grows_back():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=0.25, growth=2.0)
    optimizer.step(_quadratic(x, torch.zeros(1), curvature=12.0))  # 0.25 is too long here: halved
    assert optimizer.step_size == 0.125
    for _ in range(3):
        optimizer.step(_quadratic(x, torch.zeros(1), curvature=1.0))  # an easy objective
    assert optimizer.step_size == 0.25  # back at lr, and no further


def test_lowering_lr_caps_the_next_step():
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = ProjectedGradientDescent([x], lr=0.5)
    optimizer.step(_quadratic(x, torch.zeros(1, dtype=torch.float64), curvature=1.0))
    optimizer.param_groups[0]["lr"] = 0.125  # as the module does when the held-out error stalls
    before = x.item()
    optimizer.step(_quadratic(x, torch.zeros(1, dtype=torch.float64), curvature=1.0))
    assert x.item() == pytest.approx(before * (1 - 0.125))
    assert optimizer.step_size == 0.125


def test_plain_decrease_is_not_enough():
    # Curvature 1 and step 1.999 from x = 1: the objective falls from 0.5 to 0.499, a plain
    # decrease, but far less than the Armijo test with constant 0.5 asks (to 0.5 - 0.5 * 1.999).
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = ProjectedGradientDescent([x], lr=1.999, growth=1.0, sufficient_decrease=0.5)
    optimizer.step(_quadratic(x, torch.zeros(1, dtype=torch.float64), curvature=1.0))
    assert optimizer.step_size == pytest.approx(1.999 / 2)


def test_a_rise_within_rounding_is_accepted_and_a_larger_one_is_not():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    rise = 1e-6

    def flat_but_noisy():  # an objective at its minimum whose evaluations round upwards
        x.grad = torch.ones(1) * 1e-3
        return torch.tensor(1.0) + (rise if x.item() != 1.0 else 0.0)

    tolerant = ProjectedGradientDescent([x], lr=1e-3, growth=1.0, rounding=2e-6)
    tolerant.step(flat_but_noisy)
    assert tolerant.step_size == 1e-3  # accepted at once
    x.data.fill_(1.0)
    strict = ProjectedGradientDescent([x], lr=1e-3, growth=1.0, max_halvings=3)
    with pytest.raises(FloatingPointError, match="no step of size down to"):
        strict.step(flat_but_noisy)


def test_trials_evaluate_the_objective_alone():
    x = torch.nn.Parameter(torch.tensor([3.0]))
    calls = {"closure": 0, "objective": 0}

    def closure():
        calls["closure"] += 1
        return _quadratic(x, torch.zeros(1), curvature=4.0)()

    def objective():
        calls["objective"] += 1
        return 2.0 * x.detach().square().sum()

    ProjectedGradientDescent([x], lr=10.0).step(closure, objective)
    assert calls["closure"] == 1 and calls["objective"] == 6  # 10 -> 0.3125: five halvings, six trials


def test_an_orthonormal_projection_keeps_the_columns_orthonormal_and_descends():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    A = torch.nn.Parameter(project_orthonormal_(torch.randn(6, 3, generator=generator, dtype=torch.float64)))
    # At the solution the step only moves A off the manifold and back: rounding is all that changes.
    optimizer = ProjectedGradientDescent([A], lr=0.5, projection="orthonormal", rounding=1e-12)
    losses = [optimizer.step(_quadratic(A, target, curvature=1.0)).item() for _ in range(50)]
    assert orthogonality_error(A.detach()) < 1e-12
    assert all(later <= earlier + 1e-12 for earlier, later in zip(losses, losses[1:]))
    # The nearest matrix with orthonormal columns to the target is its polar factor.
    torch.testing.assert_close(A.detach(), project_orthonormal_(target.clone()))


def test_step_size_and_lr_are_in_the_state_dict():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=10.0, growth=1.0)
    optimizer.step(_quadratic(x, torch.zeros(1), curvature=4.0))
    optimizer.param_groups[0]["lr"] = 5.0  # as a schedule lowers it
    restored = ProjectedGradientDescent([x], lr=10.0)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.step_size == optimizer.step_size == 0.3125
    assert restored.param_groups[0]["lr"] == 5.0


def test_non_finite_objective_updates_nothing_and_says_so():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=0.1)

    def closure():
        x.grad = torch.ones(1)
        return torch.tensor(float("nan"))

    with pytest.raises(FloatingPointError, match="objective is nan before the step; nothing was updated"):
        optimizer.step(closure)
    assert x.item() == 1.0


def test_a_direction_that_never_descends_gives_up_and_restores_the_parameters():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=1.0, max_halvings=5)

    def closure():  # gradient of the wrong sign: every step raises the objective
        x.grad = -torch.ones(1)
        return x.detach().sum()

    with pytest.raises(FloatingPointError, match=r"no step of size down to 0.0156 \(from lr=1.0\) lowers the objective"):
        optimizer.step(closure)
    assert x.item() == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0.0}, "lr=0.0 must be a positive finite number"),
        ({"lr": -1.0}, "lr=-1.0 must be a positive finite number"),
        ({"lr": float("inf")}, "lr=inf must be a positive finite number"),
        ({"lr": float("nan")}, "lr=nan must be a positive finite number"),
        ({"projection": "simplex"}, r"projection='simplex' must be None or one of 'nonnegative', 'orthonormal'"),
        ({"growth": 0.5}, "growth=0.5 must be a finite number of at least 1"),
        ({"sufficient_decrease": 1.0}, "sufficient_decrease=1.0 must lie strictly between 0 and 1"),
        ({"rounding": -1e-6}, "rounding=-1e-06 must be a finite number of at least 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProjectedGradientDescent([torch.nn.Parameter(torch.ones(1))], **{"lr": 0.1, **kwargs})
