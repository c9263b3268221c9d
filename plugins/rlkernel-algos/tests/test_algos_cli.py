"""``rlkernel train`` / ``rlkernel eval`` (rlkernel_algos.cli, added to ``rlkernel`` by the plugin hook)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlkernel_algos import cli as cli_train

PPO_SMALL = ["num_envs=2", "steps_per_env=32", "epochs=2", "minibatch_size=32", "log_interval=64"]
CARTPOLE = ["--env", "testing:cartpole"]  # the core's cart-pole: these tests need no env plugin


def test_train_then_eval(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli_train.main(["train", *CARTPOLE, "--frames", "128", "--seed", "3", "--run-dir", str(run_dir),
                           "--no-progress", *PPO_SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "rlkernel train ppo: env testing:cartpole, 128 frames, seed 3" in out
    assert f"evaluate with: rlkernel eval {run_dir} --episodes 10" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "ppo"
    fields = config["config"]
    assert (fields["env"], fields["seed"], fields["num_envs"]) == ("testing:cartpole", 3, 2)
    assert {"metrics.csv", "learning_curve.png", "checkpoints", "policy.pt"} <= {p.name for p in run_dir.iterdir()}

    assert cli_train.main(["eval", str(run_dir), "--episodes", "3", "--num-envs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ppo on testing:cartpole: return ") and "± " in out and "over 3 episodes" in out
    summary = json.loads((run_dir / "eval.json").read_text())
    assert summary["episodes"] == 3 and len(summary["returns"]) == 3
    assert summary["mean"] == pytest.approx(sum(summary["returns"]) / 3)


def test_default_run_dir_name(tmp_path, capsys):
    code = cli_train.main(["train", "dqn", *CARTPOLE, "--frames", "64", "--runs-root", str(tmp_path),
                           "--no-progress", "num_envs=2", "updates_per_batch=1", "learning_starts=32"])
    assert code == 0
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("dqn-testing_cartpole-0-")
    assert (run / "policy.pt").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "ppp"], "unknown algorithm 'ppp' (registered: a2c, ddpg, dqn, ppo, sac, td3); did you mean ppo"),
        (["train", "ppo", "--env", "testing:cartpol"], "unknown env name 'testing:cartpol'; closest registered names: "
                                                       "testing:cartpole"),
        (["train", "ppo", "learning_rat=0.1"], "unknown config key 'learning_rat' for PPOConfig; did you mean "
                                               "learning_rate"),
        (["train", "ppo", "epochs=many"], "config key 'epochs': cannot read 'many' as int"),
        (["train", "ppo", "epochs=2", "dqn"], "unexpected argument 'dqn'"),
        (["train", "ppo", "--frames", "100", "epochs"], "unexpected argument 'epochs'"),
    ],
)
def test_bad_train_arguments_exit_2_with_suggestions(argv, message, capsys, tmp_path):
    code = cli_train.main([*argv, "--runs-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing was started


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "dqn", "--env", "testing:cartpole-continuous"],
         "dqn needs discrete (Categorical) actions; testing:cartpole-continuous has Bounded actions"),
        (["train", "sac", *CARTPOLE],
         "needs continuous actions with bounds (a float Bounded action spec); the environment has Categorical actions"),
    ],
)
def test_recipe_and_env_that_do_not_fit_exit_2(argv, message, capsys, tmp_path):
    assert cli_train.main([*argv, "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_bad_eval_arguments_exit_2(tmp_path, capsys):
    assert cli_train.main(["eval", str(tmp_path)]) == 2
    assert "config.json does not exist" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"algo": "nope", "config": {}}))
    assert cli_train.main(["eval", str(tmp_path)]) == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
    assert cli_train.main(["eval", str(tmp_path), "--episodes", "0"]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"algo": "ppo", "config": {"env": "gym:CartPole-v1"}}))
    assert cli_train.main(["eval", str(tmp_path)]) == 2
    assert "has no policy.pt: the run did not finish training" in capsys.readouterr().err


def test_show_config_defaults_to_ppo_on_cartpole(capsys):
    assert cli_train.main(["train", "--show-config"]) == 0  # even where gym:CartPole-v1 is not installed
    out = capsys.readouterr().out
    assert out.startswith("ppo: Proximal Policy Optimization")
    assert "env = 'gym:CartPole-v1'  -- Registered environment name." in out  # the field defaults


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, rlkernel.cli; rlkernel.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_wired_into_the_rlkernel_command(capsys):
    from rlkernel import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    assert "key=value" in capsys.readouterr().out


def test_a_complete_run_is_left_as_it_is(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", *CARTPOLE, "--frames", "128", "--run-dir", str(run_dir), "--no-progress", *PPO_SMALL]
    assert cli_train.main(argv) == 0
    summary = (run_dir / "summary.json").read_text()
    capsys.readouterr()
    assert cli_train.main(argv) == 0  # run twice, as 'nox -s demo' twice does
    out = capsys.readouterr().out
    assert f"{run_dir} is a complete run (128 frames" in out and "nothing to train" in out
    assert (run_dir / "summary.json").read_text() == summary  # fps is not rewritten as 0


def test_a_short_run_logs_enough_points_for_a_curve(tmp_path):
    from rlkernel_algos.loggers.csv_logger import read_metrics

    run_dir = tmp_path / "run"
    small = [arg for arg in PPO_SMALL if not arg.startswith("log_interval")]
    assert cli_train.main(["train", *CARTPOLE, "--frames", "1280", "--run-dir", str(run_dir), "--no-progress",
                           *small]) == 0
    steps = [step for step, _ in read_metrics(run_dir / "metrics.csv")["fps"]]
    assert steps == list(range(64, 1281, 64))  # the default log_interval (5,000) is capped at total_frames / 20
