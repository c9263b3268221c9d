"""The Trainer on the core's cart-pole (``testing:cartpole``): hooks, logging, checkpoints that resume exactly."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential

from rlkernel.collectors import SyncDataCollector
from rlkernel.data import LazyTensorStorage, SamplerWithoutReplacement, TensorDictReplayBuffer
from rlkernel_algos.loggers.csv_logger import CSVLogger, read_metrics
from rlkernel_algos.modules import EGreedyModule, QValueActor
from rlkernel_algos.objectives import ClipPPOLoss, DQNLoss, HardUpdate
from rlkernel_algos.recipes.envs import make_env
from rlkernel_algos.recipes.networks import categorical_actor, mlp, state_value_critic
from rlkernel_algos.trainers import HOOK_POINTS, EpisodeReturnTracker, ReplayBufferHook, Trainer, TrainerError

torch.set_num_threads(1)
BATCH = 64


def ppo_trainer(total: int, *, checkpoint_dir=None, interval=None, logger=None, seed: int = 0, **options) -> Trainer:
    """PPO on the cart-pole (2 envs): GAE in batch_process, minibatches from a buffer (saved in checkpoints)."""
    torch.manual_seed(seed)
    env = make_env("testing:cartpole", num_envs=2, seed=seed)
    actor, critic = categorical_actor(env, [16]), state_value_critic(env, [16])
    loss = ClipPPOLoss(actor, critic, entropy_coef=0.01, loss_critic_type="l2", normalize_advantage=True)
    loss.make_value_estimator("gae", gamma=0.99, lmbda=0.95)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-3)
    collector = SyncDataCollector(env, actor, frames_per_batch=BATCH, total_frames=total)
    trainer = Trainer(collector, loss, optimizer, optim_steps_per_batch=4, clip_grad_norm=1.0, logger=logger,
                      log_interval=BATCH, checkpoint_dir=checkpoint_dir, checkpoint_interval=interval,
                      progress_bar=False, seed=seed, **options)
    trainer.register_op("batch_process", torch.no_grad()(loss.value_estimator))
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(BATCH), sampler=SamplerWithoutReplacement(),
                                    batch_size=32)
    ReplayBufferHook(buffer).register(trainer)
    return trainer


class _Counter:
    def __init__(self, updater: HardUpdate) -> None:
        self.updater = updater

    def state_dict(self) -> dict:
        return {"counter": self.updater.counter}

    def load_state_dict(self, state: dict) -> None:
        self.updater.counter = state["counter"]


def dqn_trainer(total: int, *, checkpoint_dir=None, interval=None, seed: int = 0, start: int = BATCH) -> Trainer:
    """DQN on the cart-pole (2 envs): a replay buffer, random warm-up, epsilon-greedy, hard target updates."""
    torch.manual_seed(seed)
    env = make_env("testing:cartpole", num_envs=2, seed=seed)
    qnet = QValueActor(mlp(4, 2, [16]), in_keys=["observation"], spec=env.action_spec)
    egreedy = EGreedyModule(env.action_spec, 1.0, 0.05, 200)
    loss = DQNLoss(qnet, action_space="categorical", gamma=0.99)
    updater = HardUpdate(loss, value_network_update_interval=3)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
    collector = SyncDataCollector(env, TensorDictSequential(qnet, egreedy), frames_per_batch=BATCH,
                                  total_frames=total, init_random_frames=BATCH)
    trainer = Trainer(collector, loss, optimizer, optim_steps_per_batch=5, optim_start_frames=start,
                      checkpoint_dir=checkpoint_dir, checkpoint_interval=interval, progress_bar=False, seed=seed)
    ReplayBufferHook(TensorDictReplayBuffer(storage=LazyTensorStorage(10_000), batch_size=16)).register(trainer)
    trainer.register_op("post_optim", updater.step)
    trainer.register_op("post_steps", lambda: egreedy.step(BATCH))
    trainer.register_module("updater", _Counter(updater))
    return trainer


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = a.loss_module.state_dict(), b.loss_module.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for index in oa:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(oa[index][name], ob[index][name]), (index, name)
    assert a.collected_frames == b.collected_frames and a.optim_steps == b.optim_steps


@pytest.mark.parametrize("make", [ppo_trainer, dqn_trainer], ids=["ppo-on-policy", "dqn-replay"])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, make):
    first = 3 * BATCH
    straight = make(6 * BATCH, checkpoint_dir=tmp_path / "a", interval=first)
    straight.train()
    checkpoint = tmp_path / "a" / "checkpoint-000000000192.pt"
    assert checkpoint.is_file()

    resumed = make(6 * BATCH, checkpoint_dir=tmp_path / "b", seed=123)  # other seed: the checkpoint decides
    resumed.load_checkpoint(checkpoint)
    assert resumed.collected_frames == first
    resumed.train()
    _assert_same_state(straight, resumed)
    # ... and training really moved the parameters after the checkpoint
    fresh = make(6 * BATCH, checkpoint_dir=tmp_path / "c")
    fresh.load_checkpoint(checkpoint)
    state = {k: v.clone() for k, v in fresh.loss_module.state_dict().items()}
    assert any(not torch.equal(state[k], v) for k, v in straight.loss_module.state_dict().items())


def test_resume_from_folder_and_keep_only_newest(tmp_path):
    trainer = ppo_trainer(5 * BATCH, checkpoint_dir=tmp_path, interval=BATCH)
    trainer.train()
    names = sorted(p.name for p in tmp_path.glob("checkpoint-*.pt"))
    assert names == ["checkpoint-000000000256.pt", "checkpoint-000000000320.pt"]
    again = ppo_trainer(5 * BATCH, checkpoint_dir=tmp_path)
    assert again.resume() is True
    assert again.collected_frames == 5 * BATCH
    assert again.train()["frames"] == 5 * BATCH  # nothing left to do
    assert ppo_trainer(BATCH, checkpoint_dir=tmp_path / "empty").resume() is False


def test_checkpoint_is_loadable_with_weights_only(tmp_path):
    trainer = ppo_trainer(BATCH, checkpoint_dir=tmp_path)
    trainer.train()
    state = torch.load(next(tmp_path.glob("checkpoint-*.pt")), weights_only=True)
    assert state["counters"]["frames"] == BATCH
    assert set(state["rng"]) == {"torch", "numpy", "python"}
    assert {"loss_module", "optimizer", "replay_buffer"} <= set(state["state"])


def test_bad_checkpoints_are_clear_errors(tmp_path):
    trainer = ppo_trainer(BATCH)
    with pytest.raises(TrainerError, match="does not exist"):
        trainer.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainerError, match="cannot read the checkpoint"):
        trainer.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(TrainerError, match="not a checkpoint written by"):
        trainer.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(TrainerError, match="no checkpoint"):
        trainer.load_checkpoint(tmp_path)
    saved = ppo_trainer(BATCH, checkpoint_dir=tmp_path / "ok")
    saved.train()
    other = dqn_trainer(BATCH)  # registered modules differ
    with pytest.raises(TrainerError, match=r"holds state \[.*'replay_buffer'\] but this loop saves"):
        other.load_checkpoint(tmp_path / "ok")


def test_hooks_run_in_order_with_their_arguments():
    trainer = ppo_trainer(2 * BATCH)
    calls: list[str] = []
    for point in HOOK_POINTS:
        if point in ("batch_process", "process_optim_batch"):
            trainer.register_op(point, lambda td, p=point: calls.append(p) and None)
        elif point == "post_loss":
            trainer.register_op(point, lambda losses, minibatch, p=point: calls.append(p) and None)
        elif point.endswith("_log"):
            trainer.register_op(point, lambda batch, p=point: calls.append(p) and None)
        else:
            trainer.register_op(point, lambda p=point: calls.append(p))
    trainer.train()
    one_batch = ["batch_process", "pre_steps_log", "pre_optim_steps",
                 *["process_optim_batch", "post_loss", "post_optim"] * 4, "post_steps", "post_steps_log"]
    assert calls == one_batch * 2


def test_log_hooks_and_post_loss_reach_the_logger(tmp_path):
    with CSVLogger(tmp_path) as logger:
        trainer = ppo_trainer(4 * BATCH, logger=logger)
        trainer.register_op("post_steps_log", lambda batch: {"batch_frames": float(batch.numel())})
        trainer.register_op("post_loss", lambda losses, minibatch: losses.set("extra_metric", torch.tensor(2.0)))
        metrics = trainer.train()
    series = read_metrics(tmp_path / "metrics.csv")
    assert [s for s, _ in series["batch_frames"]] == [64, 128, 192, 256]
    assert {v for _, v in series["extra_metric"]} == {2.0}
    for name in ("loss_objective", "loss_critic", "grad_norm", "lr", "fps", "episodes"):
        assert len(series[name]) == 4, name
    assert series["return"][-1][1] == pytest.approx(metrics["return"])
    assert metrics["frames"] == 4 * BATCH and metrics["optim_steps"] == 16


def test_optim_start_frames_delays_learning():
    trainer = dqn_trainer(3 * BATCH, start=2 * BATCH)
    trainer.train()
    assert trainer.optim_steps == 2 * 5  # after the first batch, 64 < 128 frames: no update yet


def test_bad_arguments_are_trainer_errors():
    trainer = ppo_trainer(BATCH)
    with pytest.raises(TrainerError, match=r"unknown hook point 'post_los'.*did you mean post_loss"):
        trainer.register_op("post_los", lambda losses: None)
    with pytest.raises(TrainerError, match="must be callable"):
        trainer.register_op("post_optim", 3)
    with pytest.raises(TrainerError, match=r"the post_loss hook '<lambda>' must take \(losses, minibatch\)"):
        trainer.register_op("post_loss", lambda losses: losses)
    with pytest.raises(TrainerError, match=r"the post_optim hook 'step' must take \(\)"):
        def step(n):
            return n
        trainer.register_op("post_optim", step)
    with pytest.raises(TrainerError, match="already registered"):
        trainer.register_module("replay_buffer", trainer.modules["replay_buffer"])
    args = (trainer.collector, trainer.loss_module, trainer.optimizer)
    with pytest.raises(TrainerError, match="more than the collector's total_frames"):
        Trainer(*args, total_frames=10 * BATCH)
    with pytest.raises(TrainerError, match=r"frames_per_batch=10 but the collector makes batches of 64"):
        Trainer(*args, frames_per_batch=10)
    with pytest.raises(TrainerError, match="optim_steps_per_batch must be an int"):
        Trainer(*args, optim_steps_per_batch=1.5)
    with pytest.raises(TrainerError, match="clip_grad_norm must be > 0"):
        Trainer(*args, clip_grad_norm=0)
    with pytest.raises(TrainerError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        Trainer(trainer.collector, trainer.loss_module, "adam")
    with pytest.raises(TrainerError, match="log_scalar"):
        Trainer(*args, logger=object())


def test_stop_at_return_ends_training_once_the_recent_mean_reaches_it():
    trainer = ppo_trainer(40 * BATCH, stop_at_return=12.0, return_window=5)
    metrics = trainer.train()
    assert trainer.reached_target and metrics["reached_target"] == 1.0
    assert len(trainer.returns.returns) == 5 and trainer.returns.mean_return >= 12.0
    assert trainer.collected_frames < 40 * BATCH and metrics["frames"] == trainer.collected_frames
    # one batch earlier, the criterion did not hold yet: training stopped at the first batch that met it
    again = ppo_trainer(trainer.collected_frames - BATCH, return_window=5)
    again.train()
    assert len(again.returns.returns) < 5 or again.returns.mean_return < 12.0


def test_an_unreached_stop_at_return_trains_for_all_frames():
    trainer = ppo_trainer(3 * BATCH, stop_at_return=10_000.0)
    metrics = trainer.train()
    assert trainer.collected_frames == 3 * BATCH and metrics["reached_target"] == 0.0
    for bad in (float("nan"), "475", True, [475]):
        with pytest.raises(TrainerError, match="stop_at_return must be a finite number"):
            ppo_trainer(BATCH, stop_at_return=bad)
    with pytest.raises(TrainerError, match="return_window must be"):
        ppo_trainer(BATCH, return_window=0)


def test_a_loss_without_loss_terms_is_reported():
    trainer = ppo_trainer(BATCH)
    trainer.register_op("post_loss", lambda losses, minibatch: losses.select("entropy"))
    with pytest.raises(TrainerError, match=r"returned no 'loss' or 'loss_\*' term"):
        trainer.train()


def test_return_tracker_sums_rewards_like_reward_sum():
    """Summing rewards across batches gives the same returns as RewardSum's episode_reward."""
    env = make_env("testing:cartpole", num_envs=3, seed=0)
    collector = SyncDataCollector(env, None, frames_per_batch=60, total_frames=600)
    from_sum, from_rewards = EpisodeReturnTracker(window=1000), EpisodeReturnTracker(window=1000)
    found_sum, found_rewards = [], []
    for batch in collector:
        found_sum += from_sum.update(batch)
        found_rewards += from_rewards.update(batch.exclude(("next", "episode_reward")))
    assert found_sum == found_rewards and len(found_sum) > 10
    assert from_rewards.mean_length == pytest.approx(from_rewards.mean_return)  # cart-pole: reward 1 per step
    # the lengths window holds the same episodes as the returns window, in the same order
    assert list(from_rewards.lengths) == [int(r) for r in from_rewards.returns]


def test_return_tracker_state_round_trip():
    batch = TensorDict({"next": {"reward": torch.ones(2, 3, 1), "done": torch.zeros(2, 3, 1, dtype=torch.bool)}},
                       [2, 3])
    tracker = EpisodeReturnTracker()
    tracker.update(batch)
    copy = EpisodeReturnTracker()
    copy.load_state_dict(tracker.state_dict())
    batch["next", "done"][:, -1] = True
    assert tracker.update(batch) == copy.update(batch) == [6.0, 6.0]
