"""One optimisation step of SAC and of PPO: rlkernel's losses against hand-written torch.

Both sides do the same arithmetic on the same networks (copies of the same weights), on
one CPU thread, and are timed in alternating rounds (the median of the per-round ratios is
the result, robust to the load of a shared machine). Before timing, both sides compute the
loss terms on the same samples with the same random draws: ``max_loss_difference`` shows
that they are the same computation.

* **SAC** (``SACLoss``): a batch of 256 drawn from a tensor replay of 100k transitions
  (the draw is included), observation 17, action 6, a 256x256 TanhNormal actor and twin
  256x256 critics, three Adam optimisers (actor, critics, temperature), a soft update of
  the target critics. The reference is written the way a careful person writes it by hand
  (critic parameters frozen while the actor term is built, one backward, fused soft update).
* **PPO** (``ClipPPOLoss``): a minibatch of 64 drawn from a rollout of 2048 CartPole
  steps (observation 4, 2 actions as indices, a categorical policy), 64x64 tanh actor and
  critic, one Adam step. The reference follows CleanRL's update (clipped objective, value
  loss, entropy bonus, normalised advantages, approximate KL and clip fraction).
* **twin critics**: forward and backward of the two SAC critics run one after the other
  (what ``SACLoss`` does), stacked with ``torch.func.vmap``, and as batched matmuls.

Run ``python -m benchmarks updates`` (``--quick`` for a short check).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn

from rlkernel.specs import Bounded
from rlkernel_algos.modules import ProbabilisticActor, TanhNormal, ValueOperator
from rlkernel_algos.objectives import ClipPPOLoss, SACLoss, SoftUpdate

OBS, ACT, HIDDEN, BATCH, REPLAY = 17, 6, 256, 256, 100_000
PPO_OBS, PPO_ACT, PPO_HIDDEN, PPO_BATCH, ROLLOUT = 4, 2, 64, 64, 2048
LOG2 = math.log(2.0)


def mlp(sizes: list[int], act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class Concat(nn.Module):
    """``net(cat(inputs))``: a critic taking observation and action."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat(inputs, -1))


# ------------------------------------------------------------------------------------- SAC
def sac_replay() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    done = torch.rand(REPLAY, 1, generator=g) < 0.01
    return TensorDict(
        {
            "observation": torch.randn(REPLAY, OBS, generator=g),
            "action": torch.rand(REPLAY, ACT, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(REPLAY, OBS, generator=g),
                "reward": torch.randn(REPLAY, 1, generator=g),
                "done": done,
                "terminated": done,
            },
        },
        batch_size=[REPLAY],
    )


class Side:
    """One side of a comparison: ``step()`` (draw, loss, backward, optimiser steps, target
    update) and ``losses(idx)`` (the loss terms on the given sample indices, no update)."""

    def __init__(self, step: Callable[[], None], losses: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> None:
        self.step, self.losses = step, losses


def sac_rlkernel(replay: TensorDict, actor_net: nn.Module, critics: list[nn.Module]) -> Side:
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal, return_log_prob=True,
        spec=Bounded(-1.0, 1.0, shape=(ACT,)),
    )
    qvalues = [ValueOperator(Concat(c), in_keys=["observation", "action"]) for c in critics]
    loss = SACLoss(actor, qvalues, num_qvalue_nets=2, loss_function="l2")
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, tau=0.005)
    opt_actor = torch.optim.Adam(loss.actor_network.parameters(), lr=3e-4)
    opt_critic = torch.optim.Adam(loss.qvalue_network.parameters(), lr=3e-4)
    opt_alpha = torch.optim.Adam([loss.log_alpha], lr=3e-4)

    def step() -> None:
        batch = replay[torch.randint(REPLAY, (BATCH,))]
        td = loss(batch)
        opt_actor.zero_grad()
        opt_critic.zero_grad()
        opt_alpha.zero_grad()
        (td["loss_actor"] + td["loss_qvalue"] + td["loss_alpha"]).backward()
        opt_actor.step()
        opt_critic.step()
        opt_alpha.step()
        updater.step()

    def losses(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        td = loss(replay[idx])
        return {"actor": td["loss_actor"], "critic": td["loss_qvalue"], "alpha": td["loss_alpha"]}

    return Side(step, losses)


def sac_plain(replay: TensorDict, actor_net: nn.Module, critics: list[nn.Module]) -> Side:
    data = {k: v for k, v in replay.items(True, True)}
    obs, act, nobs = data["observation"], data["action"], data[("next", "observation")]
    rew, term = data[("next", "reward")], data[("next", "terminated")]
    q1, q2 = (Concat(c) for c in critics)
    t1, t2 = copy.deepcopy(q1), copy.deepcopy(q2)
    for p in [*t1.parameters(), *t2.parameters()]:
        p.requires_grad_(False)
    critic_params = [*q1.parameters(), *q2.parameters()]
    target_params = [*t1.parameters(), *t2.parameters()]
    log_alpha = torch.zeros((), requires_grad=True)
    target_entropy = -float(ACT)
    opt_actor = torch.optim.Adam(actor_net.parameters(), lr=3e-4)
    opt_critic = torch.optim.Adam(critic_params, lr=3e-4)
    opt_alpha = torch.optim.Adam([log_alpha], lr=3e-4)

    def sample(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale = actor_net(o)
        x = loc + scale * torch.randn_like(loc)
        log_prob = -0.5 * ((x - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)
        log_prob = log_prob - 2.0 * (LOG2 - x - F.softplus(-2.0 * x))
        return torch.tanh(x), log_prob.sum(-1, keepdim=True)

    def losses(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        o, a, o2, r, d = obs[idx], act[idx], nobs[idx], rew[idx], term[idx]
        alpha = log_alpha.detach().exp()
        for p in critic_params:  # the actor term must not reach the critics
            p.requires_grad_(False)
        pi, logp = sample(o)
        loss_pi = (alpha * logp - torch.min(q1(o, pi), q2(o, pi))).mean()
        for p in critic_params:
            p.requires_grad_(True)
        with torch.no_grad():
            a2, logp2 = sample(o2)
            next_v = torch.min(t1(o2, a2), t2(o2, a2)) - alpha * logp2
            y = r + 0.99 * (~d).float() * next_v
        loss_q = ((q1(o, a) - y) ** 2).mean() + ((q2(o, a) - y) ** 2).mean()
        loss_alpha = -(log_alpha * (logp.detach() + target_entropy)).mean()
        return {"actor": loss_pi, "critic": loss_q, "alpha": loss_alpha}

    def step() -> None:
        terms = losses(torch.randint(REPLAY, (BATCH,)))
        opt_actor.zero_grad()
        opt_critic.zero_grad()
        opt_alpha.zero_grad()
        (terms["critic"] + terms["actor"] + terms["alpha"]).backward()
        opt_actor.step()
        opt_critic.step()
        opt_alpha.step()
        with torch.no_grad():
            torch._foreach_lerp_(target_params, critic_params, 0.005)

    return Side(step, losses)


def sac_nets() -> tuple[nn.Module, list[nn.Module]]:
    actor = nn.Sequential(mlp([OBS, HIDDEN, HIDDEN, 2 * ACT], nn.ReLU), NormalParamExtractor())
    critics = [mlp([OBS + ACT, HIDDEN, HIDDEN, 1], nn.ReLU) for _ in range(2)]
    return actor, critics


# ------------------------------------------------------------------------------------- PPO
def ppo_rollout() -> TensorDict:
    g = torch.Generator().manual_seed(1)
    action = torch.randint(PPO_ACT, (ROLLOUT,), generator=g)
    return TensorDict(
        {
            "observation": torch.randn(ROLLOUT, PPO_OBS, generator=g),
            "action": action,
            "action_log_prob": torch.log(torch.full((ROLLOUT,), 0.5)) + 0.1 * torch.randn(ROLLOUT, generator=g),
            "advantage": torch.randn(ROLLOUT, 1, generator=g),
            "value_target": torch.randn(ROLLOUT, 1, generator=g),
        },
        batch_size=[ROLLOUT],
    )


def ppo_nets() -> tuple[nn.Module, nn.Module]:
    return mlp([PPO_OBS, PPO_HIDDEN, PPO_HIDDEN, PPO_ACT], nn.Tanh), mlp([PPO_OBS, PPO_HIDDEN, PPO_HIDDEN, 1], nn.Tanh)


def ppo_rlkernel(rollout: TensorDict, actor_net: nn.Module, critic_net: nn.Module) -> Side:
    actor = ProbabilisticActor(TensorDictModule(actor_net, ["observation"], ["logits"]), in_keys=["logits"],
                               distribution_class=torch.distributions.Categorical, return_log_prob=True)
    critic = ValueOperator(critic_net, in_keys=["observation"])
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coef=0.01, critic_coef=0.5,
                       loss_critic_type="l2", normalize_advantage=True)
    optim = torch.optim.Adam(loss.parameters(), lr=2.5e-4)

    def step() -> None:
        td = loss(rollout[torch.randint(ROLLOUT, (PPO_BATCH,))])
        optim.zero_grad()
        (td["loss_objective"] + td["loss_critic"] + td["loss_entropy"]).backward()
        optim.step()

    def losses(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        td = loss(rollout[idx])
        return {"objective": td["loss_objective"], "critic": td["loss_critic"], "entropy": td["loss_entropy"]}

    return Side(step, losses)


def ppo_plain(rollout: TensorDict, actor_net: nn.Module, critic_net: nn.Module) -> Side:
    obs, act = rollout["observation"], rollout["action"]
    old_logp, adv_all, ret = rollout["action_log_prob"], rollout["advantage"], rollout["value_target"]
    optim = torch.optim.Adam([*actor_net.parameters(), *critic_net.parameters()], lr=2.5e-4)

    def losses(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        o, a, lp_old, adv, r = obs[idx], act[idx], old_logp[idx], adv_all[idx].squeeze(-1), ret[idx]
        dist = torch.distributions.Categorical(logits=actor_net(o))
        log_ratio = dist.log_prob(a) - lp_old
        ratio = log_ratio.exp()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()  # noqa: F841 - logged by CleanRL
            clip_frac = ((ratio - 1.0).abs() > 0.2).float().mean()  # noqa: F841
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
        v_loss = 0.5 * ((critic_net(o) - r) ** 2).mean()
        entropy = dist.entropy().mean()
        return {"objective": pg, "critic": v_loss, "entropy": -0.01 * entropy}

    def step() -> None:
        terms = losses(torch.randint(ROLLOUT, (PPO_BATCH,)))
        optim.zero_grad()
        (terms["objective"] + terms["critic"] + terms["entropy"]).backward()
        optim.step()

    return Side(step, losses)


def max_difference(sides: dict[str, Side], size: int, n: int) -> float:
    """Largest difference between the two sides' loss terms on the same samples and draws."""
    (_, first), (_, second) = sides.items()
    idx = torch.randint(size, (n,))
    torch.manual_seed(123)
    a = first.losses(idx)
    torch.manual_seed(123)
    b = second.losses(idx)
    return max(float((a[k] - b[k]).detach().abs()) for k in a)


# ------------------------------------------------------------------------------ twin critics
def twin_critics(critics: list[nn.Module]) -> dict[str, Callable[[], None]]:
    x = torch.randn(BATCH, OBS + ACT)

    def loop() -> None:
        torch.stack([c(x) for c in critics]).sum().backward()

    params, buffers = torch.func.stack_module_state(critics)
    base = copy.deepcopy(critics[0]).to("meta")
    vmapped = torch.vmap(lambda p, b, inp: torch.func.functional_call(base, (p, b), (inp,)), in_dims=(0, 0, None))

    def vmap() -> None:
        vmapped(params, buffers, x).sum().backward()

    linears = [[m for m in c if isinstance(m, nn.Linear)] for c in critics]
    weights = [torch.stack([ls[i].weight.detach() for ls in linears]).requires_grad_() for i in range(3)]
    biases = [torch.stack([ls[i].bias.detach() for ls in linears]).unsqueeze(1).requires_grad_() for i in range(3)]

    def bmm() -> None:
        h = x.expand(len(critics), *x.shape)
        for i in range(3):
            h = torch.baddbmm(biases[i], h, weights[i].transpose(1, 2))
            h = h.relu() if i < 2 else h
        h.sum().backward()

    return {"loop": loop, "vmap": vmap, "bmm": bmm}


# ------------------------------------------------------------------------------------ timing
def _time(step: Callable[[], None], n: int) -> tuple[float, float]:
    """(wall, cpu) milliseconds per step; cpu is this process's CPU time (one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def compare(sides: dict[str, Callable[[], None]], *, rounds: int, per_round: int, warmup: int) -> dict:
    """Median ms per step of each side, timed in alternating rounds; ratios to the first side.

    Ratios use CPU time (``time.process_time``): on a machine shared with other processes,
    wall-clock time also counts the time spent waiting for a core. Wall-clock medians are
    reported too.
    """
    for step in sides.values():
        for _ in range(warmup):
            step()
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            w, c = _time(sides[name], per_round)
            wall[name].append(w)
            cpu[name].append(c)
    names = list(sides)
    out: dict = {}
    for name in names:
        out[f"{name}_ms"] = round(statistics.median(cpu[name]), 3)
        out[f"{name}_wall_ms"] = round(statistics.median(wall[name]), 3)
    for name in names[1:]:
        ratios = [a / b for a, b in zip(cpu[name], cpu[names[0]])]
        out[f"{name}_over_{names[0]}"] = round(statistics.median(ratios), 3)
        wall_ratios = [a / b for a, b in zip(wall[name], wall[names[0]])]
        out[f"{name}_over_{names[0]}_wall"] = round(statistics.median(wall_ratios), 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench_updates")
    parser.add_argument("--quick", action="store_true", help="a few rounds: checks that it runs")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", choices=["sac", "ppo", "twin"], action="append", help="run only these parts")
    args, _ = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rounds, per_round, warmup = (2, 3, 2) if args.quick else (args.rounds, 20, 20)

    parts = set(args.only or ["sac", "ppo", "twin"])
    result: dict = {}
    if "sac" in parts:
        replay = sac_replay()
        actor_net, critics = sac_nets()
        sides = {"plain": sac_plain(replay, copy.deepcopy(actor_net), copy.deepcopy(critics)),
                 "rlkernel": sac_rlkernel(replay, actor_net, critics)}
        diff = max_difference(sides, REPLAY, BATCH)  # before any update: same weights on both sides
        sac = compare({k: v.step for k, v in sides.items()}, rounds=rounds, per_round=per_round, warmup=warmup)
        result["sac_update"] = {**sac, "bar": 1.15, "max_loss_difference": diff}
        print(f"SAC update (batch {BATCH}, draw included): plain {sac['plain_ms']} ms, "
              f"rlkernel {sac['rlkernel_ms']} ms (CPU), ratio {sac['rlkernel_over_plain']} "
              f"(wall {sac['rlkernel_over_plain_wall']}; bar 1.15); same losses within {diff:.1e}")
    if "ppo" in parts:
        rollout = ppo_rollout()
        ppo_actor, ppo_critic = ppo_nets()
        sides = {"plain": ppo_plain(rollout, copy.deepcopy(ppo_actor), copy.deepcopy(ppo_critic)),
                 "rlkernel": ppo_rlkernel(rollout, ppo_actor, ppo_critic)}
        diff = max_difference(sides, ROLLOUT, PPO_BATCH)
        ppo = compare({k: v.step for k, v in sides.items()}, rounds=rounds, per_round=per_round * 5, warmup=warmup)
        result["ppo_minibatch_update"] = {**ppo, "bar": 1.15, "max_loss_difference": diff}
        print(f"PPO minibatch update ({PPO_BATCH} samples, draw included): plain {ppo['plain_ms']} ms, "
              f"rlkernel {ppo['rlkernel_ms']} ms (CPU), ratio {ppo['rlkernel_over_plain']} "
              f"(wall {ppo['rlkernel_over_plain_wall']}; bar 1.15); same losses within {diff:.1e}")
    if "twin" in parts:
        twin = compare(twin_critics(sac_nets()[1]), rounds=max(2, rounds // 3), per_round=per_round, warmup=warmup)
        result["twin_critics"] = twin
        print(f"twin critics fwd+bwd: loop {twin['loop_ms']} ms, vmap {twin['vmap_ms']} ms, bmm {twin['bmm_ms']} ms")
    return result


if __name__ == "__main__":
    main()
