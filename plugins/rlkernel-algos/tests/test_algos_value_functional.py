"""The value functionals against plain reference loops written from the definitions.

References are deliberately *not* the recursions the library uses: each return or
advantage is summed term by term from its textbook definition (n-step returns for
TD(lambda), discounted TD errors for GAE, the V-trace sum of the IMPALA paper), per
trajectory, in float64.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from rlkernel.errors import RLKernelError, SpecError
from rlkernel_algos.value import (
    generalized_advantage_estimate,
    reverse_discounted_cumsum,
    reward2go,
    td0_advantage_estimate,
    td0_return_estimate,
    td1_advantage_estimate,
    td1_return_estimate,
    td_lambda_advantage_estimate,
    vec_generalized_advantage_estimate,
    vec_td_lambda_return_estimate,
    vtrace_advantage_estimate,
)

BATCHES = [(), (3,), (2, 3)]


# ---------------------------------------------------------------- reference loops
def _rows(*tensors: torch.Tensor):
    """Yield, for every batch index, the 1-D time series of each tensor ([*B, T, 1] inputs)."""
    batch = tensors[0].shape[:-2]
    for index in itertools.product(*(range(n) for n in batch)):
        yield index, [t[index][:, 0].double().tolist() for t in tensors]


def _segment_end(done: list[float], t: int) -> int:
    """Last step of the trajectory that contains step ``t`` (a done, or the last step)."""
    e = t
    while e < len(done) - 1 and not done[e]:
        e += 1
    return e


def ref_gae(gamma, lmbda, value, next_value, reward, done, terminated):
    adv = torch.zeros(value.shape, dtype=torch.float64)
    for index, (v, nv, r, d, term) in _rows(value, next_value, reward, done, terminated):
        delta = [r[t] + gamma * (0.0 if term[t] else nv[t]) - v[t] for t in range(len(v))]
        for t in range(len(v)):
            e = _segment_end(d, t)
            adv[index][t, 0] = sum((gamma * lmbda) ** (k - t) * delta[k] for k in range(t, e + 1))
    return adv, adv + value.double()


def ref_td_lambda(gamma, lmbda, next_value, reward, done, terminated):
    out = torch.zeros(reward.shape, dtype=torch.float64)
    for index, (nv, r, d, term) in _rows(next_value, reward, done, terminated):
        for t in range(len(r)):
            e = _segment_end(d, t)
            n_max = e - t + 1

            def n_step(n: int, t: int = t, r: list = r, nv: list = nv, term: list = term) -> float:
                last = t + n - 1
                boot = 0.0 if term[last] else nv[last]
                return sum(gamma**k * r[t + k] for k in range(n)) + gamma**n * boot

            value = sum((1 - lmbda) * lmbda ** (n - 1) * n_step(n) for n in range(1, n_max))
            out[index][t, 0] = value + lmbda ** (n_max - 1) * n_step(n_max)
    return out


def ref_vtrace(gamma, log_pi, log_mu, value, next_value, reward, done, terminated, rho_bar, c_bar):
    adv = torch.zeros(value.shape, dtype=torch.float64)
    vs_out = torch.zeros(value.shape, dtype=torch.float64)
    for index, (lp, lm, v, nv, r, d, term) in _rows(log_pi, log_mu, value, next_value, reward, done, terminated):
        rho = [min(torch.tensor(a - b).exp().item(), rho_bar) for a, b in zip(lp, lm)]
        c = [min(torch.tensor(a - b).exp().item(), c_bar) for a, b in zip(lp, lm)]
        boot = [0.0 if term[t] else nv[t] for t in range(len(v))]
        delta = [rho[s] * (r[s] + gamma * boot[s] - v[s]) for s in range(len(v))]
        vs = []
        for t in range(len(v)):
            e = _segment_end(d, t)
            total = 0.0
            for s in range(t, e + 1):
                prod = 1.0
                for i in range(t, s):
                    prod *= c[i]
                total += gamma ** (s - t) * prod * delta[s]
            vs.append(v[t] + total)
        for t in range(len(v)):
            e = _segment_end(d, t)
            vs_next = boot[t] if t == e else vs[t + 1]
            adv[index][t, 0] = rho[t] * (r[t] + gamma * vs_next - v[t])
            vs_out[index][t, 0] = vs[t]
    return adv, vs_out


def make_data(batch: tuple[int, ...], steps: int, seed: int, dtype=torch.float32, p_done: float = 0.2):
    gen = torch.Generator().manual_seed(seed)
    shape = (*batch, steps, 1)
    done = torch.rand(shape, generator=gen) < p_done
    terminated = done & (torch.rand(shape, generator=gen) < 0.5)
    return {
        "value": torch.randn(shape, generator=gen, dtype=dtype),
        "next_value": torch.randn(shape, generator=gen, dtype=dtype),
        "reward": torch.randn(shape, generator=gen, dtype=dtype),
        "done": done,
        "terminated": terminated,
        "log_pi": 0.5 * torch.randn(shape, generator=gen, dtype=dtype),
        "log_mu": 0.5 * torch.randn(shape, generator=gen, dtype=dtype),
    }


# ---------------------------------------------------------------- the scan
@pytest.mark.parametrize("steps", [1, 2, 3, 7, 8, 33, 300])
def test_scan_matches_loop(steps):
    gen = torch.Generator().manual_seed(steps)
    x = torch.randn(4, steps, generator=gen, dtype=torch.float64)
    c = torch.rand(4, steps, generator=gen, dtype=torch.float64) * (torch.rand(4, steps, generator=gen) > 0.2)
    expected = torch.zeros_like(x)
    running = torch.zeros(4, dtype=torch.float64)
    for t in range(steps - 1, -1, -1):
        running = x[:, t] + c[:, t] * running
        expected[:, t] = running
    torch.testing.assert_close(reverse_discounted_cumsum(x, c), expected, rtol=1e-12, atol=1e-12)


def test_scan_any_time_dim_and_broadcast_discount():
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    on_last = reverse_discounted_cumsum(x.movedim(0, -1), torch.tensor(0.5, dtype=torch.float64))
    on_first = reverse_discounted_cumsum(x, torch.tensor(0.5, dtype=torch.float64), time_dim=0)
    torch.testing.assert_close(on_first, on_last.movedim(-1, 0))


def test_scan_gradients():
    x = torch.randn(2, 11, dtype=torch.float64, requires_grad=True)
    c = torch.rand(2, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: reverse_discounted_cumsum(a, b), (x, c))


def test_scan_half_precision_is_computed_in_float32():
    x = torch.ones(1, 64, dtype=torch.bfloat16)
    out = reverse_discounted_cumsum(x, torch.tensor(1.0))
    assert out.dtype is torch.bfloat16
    assert out[0, 0].item() == 64.0


def test_scan_stable_over_long_horizons_with_small_discounts():
    # (gamma * lmbda) ** 2048 underflows in any dtype: only products of discounts are formed.
    x = torch.ones(1, 2048)
    out = reverse_discounted_cumsum(x, torch.full((1, 2048), 0.5))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :-40], torch.full((2008,), 2.0))


# ---------------------------------------------------------------- functionals vs references
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("gamma, lmbda", [(0.9, 0.8), (0.99, 1.0), (0.7, 0.0)])
def test_gae_matches_reference(batch, gamma, lmbda):
    d = make_data(batch, 17, seed=1)
    adv, target = vec_generalized_advantage_estimate(
        gamma, lmbda, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    ref_adv, ref_target = ref_gae(gamma, lmbda, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    assert adv.shape == d["value"].shape and adv.dtype is torch.float32
    torch.testing.assert_close(adv.double(), ref_adv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(target.double(), ref_target, rtol=1e-5, atol=1e-5)
    assert generalized_advantage_estimate is vec_generalized_advantage_estimate


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("lmbda", [0.0, 0.6, 1.0])
def test_td_lambda_matches_reference(batch, lmbda):
    d = make_data(batch, 13, seed=2)
    out = vec_td_lambda_return_estimate(0.95, lmbda, d["next_value"], d["reward"], d["done"], d["terminated"])
    ref = ref_td_lambda(0.95, lmbda, d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    adv = td_lambda_advantage_estimate(
        0.95, lmbda, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    torch.testing.assert_close(adv.double(), ref - d["value"].double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", BATCHES)
def test_td1_and_td0_match_reference(batch):
    d = make_data(batch, 12, seed=3)
    td1 = td1_return_estimate(0.9, d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(
        td1.double(), ref_td_lambda(0.9, 1.0, d["next_value"], d["reward"], d["done"], d["terminated"]),
        rtol=1e-5, atol=1e-5,
    )
    td1_adv = td1_advantage_estimate(0.9, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(td1_adv, td1 - d["value"])
    td0 = td0_return_estimate(0.9, d["next_value"], d["reward"], d["terminated"])
    torch.testing.assert_close(
        td0.double(), ref_td_lambda(0.9, 0.0, d["next_value"], d["reward"], d["done"], d["terminated"]),
        rtol=1e-5, atol=1e-5,
    )
    td0_adv = td0_advantage_estimate(0.9, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(td0_adv, td0 - d["value"])


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("rho_bar, c_bar", [(1.0, 1.0), (2.0, 0.5)])
def test_vtrace_matches_reference(batch, rho_bar, c_bar):
    d = make_data(batch, 11, seed=4)
    adv, vs = vtrace_advantage_estimate(
        0.9, d["log_pi"], d["log_mu"], d["value"], d["next_value"], d["reward"], d["done"], d["terminated"],
        rho_thresh=rho_bar, c_thresh=c_bar,
    )
    ref_adv, ref_vs = ref_vtrace(
        0.9, d["log_pi"], d["log_mu"], d["value"], d["next_value"], d["reward"], d["done"], d["terminated"],
        rho_bar, c_bar,
    )
    torch.testing.assert_close(vs.double(), ref_vs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(adv.double(), ref_adv, rtol=1e-5, atol=1e-5)


def test_vtrace_on_policy_equals_td1():
    d = make_data((2,), 9, seed=5)
    td1 = td1_return_estimate(0.9, d["next_value"], d["reward"], d["done"], d["terminated"])
    # With rho = c = 1, vs is the TD(1) return when values are consistent along time.
    consistent = d["value"].clone()
    consistent[:, 1:] = torch.where(d["done"][:, :-1], d["value"][:, 1:], d["next_value"][:, :-1])
    _, vs = vtrace_advantage_estimate(
        0.9, d["log_mu"], d["log_mu"], consistent, d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    torch.testing.assert_close(vs, td1, rtol=1e-5, atol=1e-5)


def test_terminated_does_not_bootstrap_truncated_does():
    reward = torch.zeros(3, 1)
    next_value = torch.full((3, 1), 10.0)
    value = torch.zeros(3, 1)
    done = torch.tensor([[False], [True], [False]])
    truncated_adv, _ = vec_generalized_advantage_estimate(1.0, 1.0, value, next_value, reward, done, done & False)
    terminated_adv, _ = vec_generalized_advantage_estimate(1.0, 1.0, value, next_value, reward, done, done)
    # Truncated at step 1: it bootstraps (10); step 0's trace stops at the cut.
    assert truncated_adv[:, 0].tolist() == [20.0, 10.0, 10.0]
    assert terminated_adv[:, 0].tolist() == [10.0, 0.0, 10.0]


def test_terminated_value_may_be_nan():
    d = make_data((2,), 10, seed=6)
    poisoned = torch.where(d["terminated"], torch.tensor(float("nan")), d["next_value"])
    adv, _ = vec_generalized_advantage_estimate(0.9, 0.9, d["value"], poisoned, d["reward"], d["done"], d["terminated"])
    clean, _ = vec_generalized_advantage_estimate(
        0.9, 0.9, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    torch.testing.assert_close(adv, clean)


def test_terminated_defaults_to_done():
    d = make_data((2,), 10, seed=7)
    a, _ = vec_generalized_advantage_estimate(0.9, 0.9, d["value"], d["next_value"], d["reward"], d["done"])
    b, _ = vec_generalized_advantage_estimate(0.9, 0.9, d["value"], d["next_value"], d["reward"], d["done"], d["done"])
    torch.testing.assert_close(a, b)


def test_per_step_gamma_tensor():
    d = make_data((2,), 8, seed=8, dtype=torch.float64)
    gamma = torch.rand(2, 8, 1, dtype=torch.float64)
    out = vec_td_lambda_return_estimate(gamma, 0.5, d["next_value"], d["reward"], d["done"], d["terminated"])
    # The recursion with the step's own gamma, written as a loop.
    expected = torch.zeros_like(out)
    for b in range(2):
        g = d["next_value"][b, -1, 0] * (~d["terminated"][b, -1, 0])
        for t in range(7, -1, -1):
            nv = d["next_value"][b, t, 0] * (~d["terminated"][b, t, 0])
            if d["done"][b, t, 0] or t == 7:
                g = nv
            g = d["reward"][b, t, 0] + gamma[b, t, 0] * (0.5 * nv + 0.5 * g)
            expected[b, t, 0] = g
    torch.testing.assert_close(out, expected)


def test_features_and_other_time_dims():
    d = make_data((4,), 10, seed=9)
    wide = {k: v.expand(4, 10, 3).clone() for k, v in d.items()}
    adv, _ = vec_generalized_advantage_estimate(
        0.9, 0.8, wide["value"], wide["next_value"], wide["reward"], wide["done"], wide["terminated"]
    )
    narrow, _ = vec_generalized_advantage_estimate(
        0.9, 0.8, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    torch.testing.assert_close(adv, narrow.expand(4, 10, 3))
    flat = {k: v[..., 0] for k, v in d.items()}  # [B, T], time last
    adv_flat, _ = vec_generalized_advantage_estimate(
        0.9, 0.8, flat["value"], flat["next_value"], flat["reward"], flat["done"], flat["terminated"], time_dim=-1
    )
    torch.testing.assert_close(adv_flat, narrow[..., 0])


def test_reward2go():
    reward = torch.ones(5, 1)
    done = torch.tensor([[False], [True], [False], [False], [False]])
    assert reward2go(reward, done, 0.5)[:, 0].tolist() == [1.5, 1.0, 1.75, 1.5, 1.0]


# ---------------------------------------------------------------- errors
def test_mismatched_shapes_are_named():
    d = make_data((2,), 6, seed=10)
    with pytest.raises(SpecError, match=r"reward has shape \[2, 5, 1\] but state_value has shape \[2, 6, 1\]"):
        vec_generalized_advantage_estimate(
            0.9, 0.9, d["value"], d["next_value"], d["reward"][:, :5], d["done"], d["terminated"]
        )


def test_done_must_be_bool():
    d = make_data((2,), 6, seed=11)
    with pytest.raises(SpecError, match=r"done must be a bool tensor, got dtype torch\.float32"):
        vec_generalized_advantage_estimate(0.9, 0.9, d["value"], d["next_value"], d["reward"], d["done"].float())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gamma": 1.5}, r"gamma must be in \[0.0, 1.0\], got 1.5"),
        ({"lmbda": -0.1}, r"lmbda must be in \[0.0, 1.0\], got -0.1"),
        ({"gamma": "0.9"}, "gamma must be a number"),
        ({"time_dim": 3}, "time_dim=3 is not a dim of state_value"),
        ({"gamma": torch.ones(5, 5)}, r"gamma of shape \[5, 5\] does not broadcast"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    d = make_data((2,), 6, seed=12)
    args = {"gamma": 0.9, "lmbda": 0.9, "time_dim": -2, **kwargs}
    with pytest.raises(RLKernelError, match=message):
        vec_generalized_advantage_estimate(
            args["gamma"], args["lmbda"], d["value"], d["next_value"], d["reward"], d["done"], d["terminated"],
            time_dim=args["time_dim"],
        )


def test_rolling_gamma_false_is_refused():
    d = make_data((2,), 6, seed=13)
    with pytest.raises(SpecError, match="rolling_gamma=False"):
        vec_td_lambda_return_estimate(0.9, 0.9, d["next_value"], d["reward"], d["done"], rolling_gamma=False)
