"""Projected gradient descent with backtracking, on problems with known answers."""

from __future__ import annotations

import pytest
import torch

from panda_lightning.optim import ProjectedGradientDescent


def _quadratic(x, target, curvature):
    def closure():
        x.grad = curvature * (x.detach() - target)
        return 0.5 * curvature * (x.detach() - target).square().sum()

    return closure


def test_converges_to_the_projection_of_the_unconstrained_minimum():
    x = torch.nn.Parameter(torch.ones(3))
    target = torch.tensor([2.0, -1.0, 0.5])
    optimizer = ProjectedGradientDescent([x], lr=0.5, nonnegative=True)
    for _ in range(60):
        optimizer.step(_quadratic(x, target, curvature=1.0))
    torch.testing.assert_close(x.detach(), torch.tensor([2.0, 0.0, 0.5]))
    assert optimizer.step_size == 0.5  # never needed a halving


def test_too_large_a_step_is_halved_until_the_objective_falls():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=10.0)
    losses = [optimizer.step(_quadratic(x, torch.zeros(1), curvature=4.0)).item() for _ in range(20)]
    # Curvature 4: steps above 2/4 raise the objective; 10 is halved to 0.3125.
    assert optimizer.step_size == 0.3125
    assert all(later <= earlier for earlier, later in zip(losses, losses[1:]))
    assert abs(x.item()) < 1e-6


def test_step_size_is_in_the_state_dict():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = ProjectedGradientDescent([x], lr=10.0)
    optimizer.step(_quadratic(x, torch.zeros(1), curvature=4.0))
    restored = ProjectedGradientDescent([x], lr=10.0)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.step_size == optimizer.step_size == 0.3125


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


@pytest.mark.parametrize("lr", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_learning_rates_are_named(lr):
    with pytest.raises(ValueError, match=f"lr={lr} must be a positive finite number"):
        ProjectedGradientDescent([torch.nn.Parameter(torch.ones(1))], lr=lr)
