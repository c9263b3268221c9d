"""Distributions: log-probabilities against numerical references, stability, masks, modes."""

from __future__ import annotations

import math

import pytest
import torch

from rlkernel.errors import SpecError
from rlkernel_algos.modules import (
    Delta,
    IndependentNormal,
    MaskedCategorical,
    MaskedOneHotCategorical,
    OneHotCategorical,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)


def trapezoid_grid(low: float, high: float, n: int = 200_001) -> torch.Tensor:
    return torch.linspace(low, high, n, dtype=torch.float64)


# ---------------------------------------------------------------- TanhNormal
def test_tanh_normal_log_prob_matches_change_of_variables():
    loc = torch.tensor([[0.3, -1.2], [2.0, 0.0]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 1.5], [0.2, 2.0]], dtype=torch.float64)
    dist = TanhNormal(loc, scale, low=-2.0, high=3.0)
    value = torch.tensor([[0.1, -1.9], [2.9, 0.5]], dtype=torch.float64)
    t = (value - 0.5) / 2.5
    x = torch.atanh(t)
    expected = (torch.distributions.Normal(loc, scale).log_prob(x) - torch.log1p(-t * t) - math.log(2.5)).sum(-1)
    torch.testing.assert_close(dist.log_prob(value), expected)
    assert dist.batch_shape == (2,) and dist.event_shape == (2,)


def test_tanh_normal_density_integrates_to_one():
    dist = TanhNormal(torch.tensor([0.7], dtype=torch.float64), torch.tensor([1.3], dtype=torch.float64),
                      low=-1.0, high=2.0)
    grid = trapezoid_grid(-1.0, 2.0)[1:-1]
    density = dist.log_prob(grid.unsqueeze(-1)).exp()
    assert abs(torch.trapezoid(density, grid).item() - 1.0) < 1e-4


def test_tanh_normal_log_prob_is_stable_near_the_bounds():
    dist = TanhNormal(torch.tensor([9.0, -9.0]), torch.tensor([0.5, 0.5]))
    near = torch.tensor([1.0 - 1e-7, -1.0 + 1e-7])
    at = torch.tensor([1.0, -1.0])
    for value in (near, at):
        lp = dist.log_prob(value)
        assert torch.isfinite(lp)
    # The naive formula log(1 - tanh(x)^2) underflows to -inf here; the softplus form does not.
    x = torch.tensor([12.0])
    assert torch.isinf(torch.log(1 - torch.tanh(x) ** 2)).all()
    sample, lp = TanhNormal(torch.tensor([12.0]), torch.tensor([0.1])).rsample_and_log_prob()
    assert sample.item() == 1.0 and torch.isfinite(lp)


def test_tanh_normal_joint_log_prob_is_exact_and_differentiable():
    loc = torch.tensor([0.4, -0.3], requires_grad=True)
    dist = TanhNormal(loc, torch.tensor([0.6, 0.9]))
    torch.manual_seed(0)
    sample, lp = dist.rsample_and_log_prob((1000,))
    torch.testing.assert_close(lp, dist.log_prob(sample), rtol=1e-4, atol=1e-4)
    lp.mean().backward()
    assert torch.isfinite(loc.grad).all()


def test_tanh_normal_samples_follow_the_density():
    dist = TanhNormal(torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.8], dtype=torch.float64))
    torch.manual_seed(0)
    samples = dist.sample((200_000,))[:, 0]
    grid = trapezoid_grid(-0.99, 0.3)
    mass = torch.trapezoid(dist.log_prob(grid.unsqueeze(-1)).exp(), grid).item()
    empirical = ((samples > -0.99) & (samples < 0.3)).double().mean().item()
    assert abs(mass - empirical) < 5e-3


def test_tanh_normal_mode_and_deterministic_sample():
    loc = torch.tensor([0.4, -0.2, 1.0], dtype=torch.float64)
    scale = torch.tensor([0.3, 0.2, 1.5], dtype=torch.float64)
    dist = TanhNormal(loc, scale, low=-2.0, high=2.0)
    torch.testing.assert_close(dist.deterministic_sample, 2.0 * torch.tanh(loc))
    grid = trapezoid_grid(-1.999, 1.999, 40_001)
    for i in range(3):
        one = TanhNormal(loc[i : i + 1], scale[i : i + 1], low=-2.0, high=2.0)
        best = grid[one.log_prob(grid.unsqueeze(-1)).argmax()]
        assert abs(dist.mode[i].item() - best.item()) < 1e-3
    with pytest.raises(NotImplementedError):
        _ = dist.mean


def test_tanh_normal_rejects_inverted_bounds():
    with pytest.raises(SpecError, match="low must be < high"):
        TanhNormal(torch.zeros(2), torch.ones(2), low=1.0, high=-1.0)


# ---------------------------------------------------------------- TruncatedNormal
@pytest.mark.parametrize("loc", [0.3, 2.5, -8.0, 30.0])
def test_truncated_normal_against_numerical_integrals(loc):
    dist = TruncatedNormal(torch.tensor([loc], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64),
                           low=-1.0, high=1.5)
    grid = trapezoid_grid(-1.0, 1.5)
    density = dist.log_prob(grid.unsqueeze(-1)).exp()
    assert abs(torch.trapezoid(density, grid).item() - 1.0) < 1e-4
    mean = torch.trapezoid(grid * density, grid).item()
    assert abs(dist.mean.item() - mean) < 1e-4
    assert abs(dist.variance.item() - torch.trapezoid((grid - mean) ** 2 * density, grid).item()) < 1e-4
    plogp = torch.where(density > 0, density * density.log(), torch.zeros_like(density))
    assert abs(dist.entropy().item() + torch.trapezoid(plogp, grid).item()) < 1e-3
    torch.manual_seed(0)
    samples = dist.rsample((20_000,))
    assert ((samples >= -1.0) & (samples <= 1.5)).all()
    assert abs(samples.mean().item() - mean) < 0.03


def test_truncated_normal_float32_far_tail_is_finite():
    dist = TruncatedNormal(torch.tensor([40.0]), torch.tensor([1.0]))
    lp = dist.log_prob(torch.tensor([1.0]))
    assert torch.isfinite(lp) and lp.item() == pytest.approx(math.log(39.0), abs=0.05)
    assert torch.isfinite(dist.mean).all() and torch.isfinite(dist.rsample((10,))).all()


def test_truncated_normal_outside_is_minus_inf_and_mode_clamps():
    dist = TruncatedNormal(torch.tensor([3.0, 0.2]), torch.tensor([1.0, 1.0]), low=-1.0, high=1.0, event_dims=0)
    assert dist.log_prob(torch.tensor([1.5, 0.0]))[0].item() == float("-inf")
    assert dist.mode.tolist() == pytest.approx([1.0, 0.2])
    torch.testing.assert_close(dist.deterministic_sample, dist.mean)


def test_truncated_normal_rsample_has_gradients():
    loc = torch.tensor([0.2], requires_grad=True)
    TruncatedNormal(loc, torch.tensor([0.5])).rsample((100,)).mean().backward()
    assert torch.isfinite(loc.grad).all() and loc.grad.abs().item() > 0


# ---------------------------------------------------------------- Normal and Delta families
def test_independent_normal():
    loc, scale = torch.randn(4, 3), torch.rand(4, 3) + 0.1
    dist = IndependentNormal(loc, scale)
    value = torch.randn(4, 3)
    torch.testing.assert_close(dist.log_prob(value), torch.distributions.Normal(loc, scale).log_prob(value).sum(-1))
    assert torch.equal(dist.mode, loc) and torch.equal(dist.deterministic_sample, loc) and torch.equal(dist.mean, loc)
    assert dist.rsample((2,)).shape == (2, 4, 3)


def test_delta_and_tanh_delta():
    dist = TanhDelta(torch.tensor([[0.0, 100.0]]), low=-2.0, high=4.0)
    assert dist.mode.tolist() == [[1.0, 4.0]]
    assert dist.log_prob(torch.tensor([[1.0, 4.0]])).item() == float("inf")
    assert dist.log_prob(torch.tensor([[1.5, 4.0]])).item() == float("-inf")
    assert torch.equal(Delta(torch.ones(2)).deterministic_sample, torch.ones(2))


# ---------------------------------------------------------------- discrete
def test_one_hot_categorical_accepts_bool_values_and_straight_through():
    logits = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    dist = OneHotCategorical(logits=logits)
    expected = torch.log_softmax(logits.detach(), -1)[2]
    torch.testing.assert_close(dist.log_prob(torch.tensor([False, False, True])), expected)
    assert dist.mode.tolist() == [0, 0, 1]
    sample = dist.rsample()
    assert sorted(sample.tolist()) == [0.0, 0.0, 1.0]
    (sample * torch.arange(3.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(SpecError, match="last dim of 3"):
        dist.log_prob(torch.zeros(4))


def test_masked_categorical_never_samples_masked_entries():
    logits = torch.tensor([[5.0, 0.0, 1.0, 2.0], [0.0, 9.0, 0.0, 0.0]])
    mask = torch.tensor([[False, True, True, False], [True, False, False, True]])
    dist = MaskedCategorical(logits=logits, mask=mask)
    torch.manual_seed(0)
    samples = dist.sample((5000,))
    assert mask.gather(-1, samples.T).all()
    assert dist.log_prob(torch.tensor([0, 1])).tolist() == [float("-inf"), float("-inf")]
    allowed = torch.log_softmax(torch.tensor([0.0, 1.0]), -1)
    torch.testing.assert_close(dist.log_prob(torch.tensor([1, 0]))[0], allowed[0])
    assert dist.mode.tolist() == [2, 0] and torch.equal(dist.deterministic_sample, dist.mode)
    assert torch.isfinite(dist.entropy()).all()
    frequencies = torch.bincount(samples[:, 0], minlength=4).double() / 5000
    assert abs(frequencies[2].item() - torch.softmax(torch.tensor([0.0, 1.0]), -1)[1].item()) < 0.03


def test_masked_categorical_gradients_are_finite():
    logits = torch.zeros(3, requires_grad=True)
    dist = MaskedCategorical(logits=logits, mask=torch.tensor([True, False, True]))
    (dist.log_prob(torch.tensor(0)) + dist.entropy()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].item() == 0.0


def test_masked_categorical_from_probs_and_broadcast_mask():
    dist = MaskedCategorical(probs=torch.full((5, 3), 1 / 3), mask=torch.tensor([True, True, False]))
    torch.testing.assert_close(dist.probs, torch.tensor([[0.5, 0.5, 0.0]]).expand(5, 3))


@pytest.mark.parametrize("cls", [MaskedCategorical, MaskedOneHotCategorical])
def test_mask_errors_are_named(cls):
    with pytest.raises(SpecError, match=r"mask of shape \[2\] does not broadcast to the logits' shape \[4, 3\]"):
        cls(logits=torch.zeros(4, 3), mask=torch.ones(2, dtype=torch.bool))
    with pytest.raises(SpecError, match="mask must be a bool tensor"):
        cls(logits=torch.zeros(3), mask=torch.ones(3))
    with pytest.raises(SpecError, match=r"allows no category at batch index \[1\]"):
        cls(logits=torch.zeros(2, 3), mask=torch.tensor([[True, False, False], [False, False, False]]))


def test_masked_one_hot_categorical():
    mask = torch.tensor([False, True, True])
    dist = MaskedOneHotCategorical(logits=torch.tensor([10.0, 0.0, 1.0]), mask=mask)
    torch.manual_seed(0)
    samples = dist.sample((2000,))
    assert (samples[:, 0] == 0).all() and (samples.sum(-1) == 1).all()
    assert dist.log_prob(torch.tensor([True, False, False])).item() == float("-inf")
    assert dist.mode.tolist() == [0, 0, 1]
