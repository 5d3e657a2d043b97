"""Algorithm 1's pieces on problems with known answers: projected gradient steps with
backtracking and growth, one whole iteration against autograd, and the optimiser that holds
the step sizes for Lightning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from panda_lightning.fitting.optimizer import BlockCoordinateDescent
from panda_lightning.functional.algorithm import (
    GramRelativeError,
    Iteration,
    LineSearch,
    RelativeReconstructionError,
    StepSizes,
    algorithm_1_step,
    projected_gradient_step,
)
from panda_lightning.functional.factorization import (
    orthogonality_error,
    positions_gram,
    project_nonnegative_,
    project_orthonormal_,
    random_parts,
)


class Quadratic:
    """``f(x) = curvature / 2 ||x - target||^2``, counting its evaluations."""

    def __init__(self, target, curvature):
        self.target, self.curvature, self.evaluations = target, curvature, 0

    def __call__(self, x):
        self.evaluations += 1
        return 0.5 * self.curvature * (x - self.target).square().sum()

    def step(self, x, step_size, max_step_size, project=None, **line_search):
        loss, gradient = 0.5 * self.curvature * (x - self.target).square().sum(), self.curvature * (x - self.target)
        return projected_gradient_step(self, x, loss, gradient, step_size, max_step_size, project, LineSearch(**line_search))


def _run(f, x, steps, lr, **kwargs):
    step_size = lr
    for _ in range(steps):
        x, step_size = f.step(x, step_size, lr, **kwargs)
    return x, step_size


def test_converges_to_the_projection_of_the_unconstrained_minimum():
    f = Quadratic(torch.tensor([2.0, -1.0, 0.5]), curvature=1.0)
    x, step_size = _run(f, torch.ones(3), 60, lr=0.5, project=project_nonnegative_)
    torch.testing.assert_close(x, torch.tensor([2.0, 0.0, 0.5]))
    assert step_size == 0.5  # grew back to lr after each step, never past it


def test_too_large_a_step_is_halved_until_the_objective_falls_sufficiently():
    f = Quadratic(torch.zeros(1), curvature=4.0)
    x, losses, step_size = torch.tensor([1.0]), [], 10.0
    for _ in range(20):
        x, step_size = f.step(x, step_size, 10.0, growth=1.0)
        losses.append(f(x).item())
    # Curvature 4: the Armijo test with constant 1e-4 accepts steps up to (2 - 2e-4) / 4; 10 is
    # halved to 0.3125, and with growth 1 it stays there.
    assert step_size == 0.3125
    assert all(later <= earlier for earlier, later in zip(losses, losses[1:]))
    assert abs(x.item()) < 1e-6


def test_a_step_size_halved_by_one_hard_step_grows_back():
    x, step_size = Quadratic(torch.zeros(1), curvature=12.0).step(torch.tensor([1.0]), 0.25, 0.25)
    assert step_size == 0.125  # 0.25 is too long at curvature 12: halved
    easy = Quadratic(torch.zeros(1), curvature=1.0)
    for _ in range(3):
        x, step_size = easy.step(x, step_size, 0.25)
    assert step_size == 0.25  # back at lr, and no further


def test_a_lower_max_step_size_caps_the_next_step():
    f = Quadratic(torch.zeros(1, dtype=torch.float64), curvature=1.0)
    x, step_size = f.step(torch.tensor([1.0], dtype=torch.float64), 0.5, 0.5)
    after, step_size = f.step(x, step_size, 0.125)  # as the module lowers lr when the held-out error stalls
    assert after.item() == pytest.approx(x.item() * (1 - 0.125))
    assert step_size == 0.125


def test_plain_decrease_is_not_enough():
    # Curvature 1 and step 1.999 from x = 1: the objective falls from 0.5 to 0.499, a plain
    # decrease, but far less than the Armijo test with constant 0.5 asks (to 0.5 - 0.5 * 1.999).
    f = Quadratic(torch.zeros(1, dtype=torch.float64), curvature=1.0)
    _, step_size = f.step(torch.tensor([1.0], dtype=torch.float64), 1.999, 1.999, growth=1.0, sufficient_decrease=0.5)
    assert step_size == pytest.approx(1.999 / 2)


def test_a_rise_within_rounding_is_accepted_and_a_larger_one_is_not():
    def flat_but_noisy(x):  # an objective at its minimum whose evaluations round upwards
        return torch.tensor(1.0) + (1e-6 if x.item() != 1.0 else 0.0)

    x, loss, gradient = torch.tensor([1.0]), torch.tensor(1.0), torch.tensor([1e-3])
    _, step_size = projected_gradient_step(flat_but_noisy, x, loss, gradient, 1e-3, 1e-3, None, LineSearch(growth=1.0, rounding=2e-6))
    assert step_size == 1e-3  # accepted at once
    with pytest.raises(FloatingPointError, match="no step of size down to"):
        projected_gradient_step(flat_but_noisy, x, loss, gradient, 1e-3, 1e-3, None, LineSearch(growth=1.0, max_halvings=3))


def test_trials_evaluate_the_objective_alone():
    f = Quadratic(torch.zeros(1), curvature=4.0)
    f.step(torch.tensor([3.0]), 10.0, 10.0)
    assert f.evaluations == 6  # 10 -> 0.3125: five halvings, six trials, and no gradient


def test_an_orthonormal_projection_keeps_the_columns_orthonormal_and_descends():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    A = project_orthonormal_(torch.randn(6, 3, generator=generator, dtype=torch.float64))
    f, losses, step_size = Quadratic(target, curvature=1.0), [], 0.5
    for _ in range(50):
        # At the solution the step only moves A off the manifold and back: rounding is all that changes.
        A, step_size = f.step(A, step_size, 0.5, project_orthonormal_, rounding=1e-12)
        losses.append(f(A).item())
    assert orthogonality_error(A) < 1e-12
    assert all(later <= earlier + 1e-12 for earlier, later in zip(losses, losses[1:]))
    # The nearest matrix with orthonormal columns to the target is its polar factor.
    torch.testing.assert_close(A, project_orthonormal_(target.clone()))


def test_a_non_finite_objective_says_so():
    with pytest.raises(FloatingPointError, match="objective is nan before the step; nothing was updated"):
        projected_gradient_step(lambda x: x.sum(), torch.ones(1), torch.tensor(float("nan")), torch.ones(1), 0.1, 0.1)


def test_a_direction_that_never_descends_gives_up_and_leaves_the_point():
    x = torch.tensor([1.0])  # gradient of the wrong sign: every step raises the objective
    with pytest.raises(FloatingPointError, match=r"no step of size down to 0.0156 \(from lr=1.0\) lowers the objective"):
        projected_gradient_step(lambda x: x.sum(), x, x.sum(), -torch.ones(1), 1.0, 1.0, None, LineSearch(max_halvings=5))
    assert x.item() == 1.0


def _autograd_gradient(Z, A, P, wrt):
    A, P = A.clone().requires_grad_(wrt == "A"), P.clone().requires_grad_(wrt == "P")
    ((Z - A @ (A.T @ Z @ P) @ P.T).square().sum() / Z.square().sum()).backward()
    return (A if wrt == "A" else P).grad


def test_one_iteration_is_a_projected_P_step_then_an_A_step_with_the_new_P():
    generator = torch.Generator().manual_seed(0)
    Z = torch.randn(5, 12, 20, generator=generator, dtype=torch.float64)
    A = project_orthonormal_(torch.randn(12, 4, generator=generator, dtype=torch.float64))
    P = random_parts(20, 3, generator).double()
    # Step sizes small enough for the first trial to be accepted: plain projected gradient steps.
    sizes = StepSizes(parts=1e-3, appearances=1e-3)
    step = algorithm_1_step(RelativeReconstructionError(Z), A, P, sizes, max_step_sizes=StepSizes(1.0, 1.0))

    expected_P = (P - 1e-3 * _autograd_gradient(Z, A, P, "P")).clamp(min=0)
    expected_A = project_orthonormal_(A - 1e-3 * _autograd_gradient(Z, A, expected_P, "A"))
    torch.testing.assert_close(step.parts, expected_P)
    torch.testing.assert_close(step.appearances, expected_A)
    torch.testing.assert_close(step.relative_error, RelativeReconstructionError(Z)(A, P))
    assert step.step_sizes == StepSizes(2e-3, 2e-3)  # accepted at once: doubled for the next
    assert (P >= 0).all() and not torch.equal(step.parts, P)  # the inputs are not modified...
    assert orthogonality_error(A) < 1e-12  # ...A is still the one passed in

    without_A = algorithm_1_step(RelativeReconstructionError(Z), A, P, StepSizes(1e-3), StepSizes(1.0))
    assert without_A.appearances is A and without_A.step_sizes.appearances is None
    torch.testing.assert_close(without_A.parts, expected_P)


def test_a_full_basis_step_on_the_gram_matrix_is_the_step_on_the_activations():
    generator = torch.Generator().manual_seed(1)
    Z = torch.randn(6, 5, 30, generator=generator, dtype=torch.float64)
    A = project_orthonormal_(torch.randn(5, 5, generator=generator, dtype=torch.float64))
    P = torch.rand(30, 4, generator=generator, dtype=torch.float64)
    # lr large enough for trials to be halved: the line searches must agree trial by trial.
    sizes, largest = StepSizes(parts=100.0), StepSizes(parts=100.0)
    on_activations = algorithm_1_step(RelativeReconstructionError(Z), A, P, sizes, largest)
    on_gram = algorithm_1_step(GramRelativeError(positions_gram(Z)), A, P, sizes, largest)
    assert on_gram.step_sizes == on_activations.step_sizes and on_gram.step_sizes.parts < 100
    torch.testing.assert_close(on_gram.parts, on_activations.parts, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(on_gram.relative_error, on_activations.relative_error, rtol=1e-10, atol=1e-12)
    assert on_gram.appearances is A
    doubled = GramRelativeError(positions_gram(Z), reduce=lambda t: 2 * t)  # two devices, one batch each
    torch.testing.assert_close(doubled.with_parts_gradient(None, P)[1], GramRelativeError(positions_gram(Z)).with_parts_gradient(None, P)[1])


def test_a_gram_matrix_refuses_an_appearance_step():
    generator = torch.Generator().manual_seed(2)
    Z = torch.randn(3, 5, 8, generator=generator, dtype=torch.float64)
    square = project_orthonormal_(torch.randn(5, 5, generator=generator, dtype=torch.float64))
    objective, P = GramRelativeError(positions_gram(Z)), torch.rand(8, 2, dtype=torch.float64)
    message = r"A={}: a positions' Gram matrix determines the objective only for a full orthonormal basis \(appearance_rank = C"
    with pytest.raises(ValueError, match=message.format(r"\(5, 5\)")):  # an A step asked for
        algorithm_1_step(objective, square, P, StepSizes(1.0, 1.0), StepSizes(1.0, 1.0))
    with pytest.raises(ValueError, match=message.format(r"\(5, 2\)")):
        objective(square[:, :2], P)
    with pytest.raises(ValueError, match=r"an A step needs the activations themselves"):
        objective.with_appearances_gradient(square, P)


def test_the_objective_sums_over_devices_with_reduce():
    Z = torch.randn(4, 6, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    A, P = project_orthonormal_(torch.randn(6, 2, dtype=torch.float64)), torch.rand(10, 3, dtype=torch.float64)
    # Two "devices" holding the same batch: every sum doubles, the relative error does not change.
    doubled = RelativeReconstructionError(Z, reduce=lambda t: 2 * t)
    alone = RelativeReconstructionError(Z)
    torch.testing.assert_close(doubled(A, P), alone(A, P))
    torch.testing.assert_close(doubled.with_parts_gradient(A, P)[1], alone.with_parts_gradient(A, P)[1])
    assert doubled.energy == 2 * alone.energy


def test_the_optimizer_writes_an_iteration_and_checkpoints_step_sizes_and_lr():
    parts, appearances = torch.nn.Parameter(torch.rand(10, 3)), torch.nn.Parameter(torch.zeros(6, 2))
    optimizer = BlockCoordinateDescent(parts, appearances, lr=8.0)
    assert optimizer.blocks == ("parts", "appearances") and optimizer.step_sizes() == StepSizes(8.0, 8.0)
    new_parts, new_appearances = torch.rand(10, 3), torch.rand(6, 2)
    with torch.no_grad():
        optimizer.step(iteration=Iteration(new_appearances, new_parts, torch.tensor(0.5), StepSizes(2.0, 4.0)))
    assert torch.equal(parts, new_parts) and torch.equal(appearances, new_appearances)
    optimizer.halve_max_step_sizes()  # as PandA does when the held-out error stalls
    restored = BlockCoordinateDescent(parts, appearances, lr=8.0)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.step_sizes() == StepSizes(2.0, 4.0) and restored.max_step_sizes() == StepSizes(4.0, 4.0)
    assert BlockCoordinateDescent(parts, None, lr=1.0).blocks == ("parts",)


@pytest.mark.parametrize(
    "lr, message",
    [
        (0.0, r"lr=0.0 must be a positive finite number \(the largest step size\)"),
        (-1.0, "lr=-1.0 must be a positive finite number"),
        (float("inf"), "lr=inf must be a positive finite number"),
        (float("nan"), "lr=nan must be a positive finite number"),
    ],
)
def test_bad_lr_is_named(lr, message):
    with pytest.raises(ValueError, match=message):
        BlockCoordinateDescent(torch.nn.Parameter(torch.ones(1)), None, lr=lr)


def test_the_documented_algorithm_1_loop_fits_planted_factors_without_lightning():
    documentation = (Path(__file__).parents[1] / "docs" / "algorithm.md").read_text()
    loop = re.search(r"```python\n(from panda_lightning.functional.algorithm import .*?)```", documentation, re.S).group(1)
    generator = torch.Generator().manual_seed(0)
    planted_A, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))
    planted_P = torch.nn.functional.one_hot(torch.arange(16) % 4, 4).double() / 2  # 4 stripes, unit columns
    batches = [planted_A @ torch.randn(8, 6, 4, generator=generator, dtype=torch.float64) @ planted_P.T for _ in range(300)]
    A = project_orthonormal_(torch.randn(6, 6, generator=generator, dtype=torch.float64))
    P = random_parts(16, 4, generator).double()
    namespace = {"batches": batches, "A": A, "P": P}
    exec(loop, namespace)
    held_out = planted_A @ torch.randn(64, 6, 4, generator=generator, dtype=torch.float64) @ planted_P.T
    assert RelativeReconstructionError(held_out)(A, P) > 0.5  # where it started...
    assert RelativeReconstructionError(held_out)(namespace["A"], namespace["P"]) < 1e-4  # ...and where it ends


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"growth": 0.5}, r"growth=0.5 must be a finite number of at least 1 \(1: the step size never grows\)"),
        ({"sufficient_decrease": 1.0}, r"sufficient_decrease=1.0 must be a finite number in \(0, 1\)"),
        ({"rounding": -1e-6}, "rounding=-1e-06 must be a non-negative finite number"),
        ({"max_halvings": -1}, "max_halvings=-1 must be a non-negative integer"),
    ],
)
def test_bad_line_search_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LineSearch(**kwargs)
