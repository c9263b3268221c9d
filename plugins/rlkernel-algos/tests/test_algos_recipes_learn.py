"""The learning benchmark's bookkeeping: its task list, the results table, the Markdown update."""

from __future__ import annotations

import json

import pytest

from rlkernel_algos.recipes import RECIPE_NAMES
from rlkernel_algos.recipes.learn import BEGIN, END, TASKS, Task, main, render_table, run_seed, write_table


def test_tasks_cover_every_recipe_and_the_targets():
    assert {t.algo for t in TASKS} == set(RECIPE_NAMES)
    by_name = {t.name: t for t in TASKS}
    assert (by_name["ppo-cartpole"].frames, by_name["ppo-cartpole"].target) == (100_000, 475.0)
    assert (by_name["sac-dmc-cartpole-balance"].frames, by_name["sac-dmc-cartpole-balance"].target) == (30_000, 900.0)
    assert (by_name["ppo-dmc-cartpole-balance"].frames, by_name["ppo-dmc-cartpole-balance"].target) == (200_000, 800.0)
    assert by_name["sac-hopper"].long and not by_name["sac-pendulum"].long
    assert by_name["ppo-cartpole"].train_command(2, "runs/x") == (
        "rlkernel train ppo --env gym:CartPole-v1 --frames 100000 --seed 2 --run-dir runs/x --no-progress"
    )


def _result(root, task, seed, mean, wall=80.0):
    folder = root / task / f"seed-{seed}"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({
        "algo": "dqn", "env": "gym:CartPole-v1", "frames": 100096, "seed": seed, "train_wall_time_s": wall,
        "mean": mean, "std": 0.0, "target": 475.0,
    }))


def test_table_reports_the_median_of_the_seeds(tmp_path):
    _result(tmp_path, "dqn-cartpole", 0, 145.0, wall=70.0)
    _result(tmp_path, "dqn-cartpole", 1, 500.0, wall=80.0)
    _result(tmp_path, "dqn-cartpole", 2, 500.0, wall=90.0)
    _result(tmp_path, "ppo-cartpole", 0, 500.0)
    _result(tmp_path, "ppo-cartpole", 1, 200.0)
    _result(tmp_path, "ppo-cartpole", 2, 300.0)
    table = render_table(tmp_path).splitlines()
    assert table[0].startswith("| algo | env | frames | seeds | train wall time (median) |")
    assert "| dqn | gym:CartPole-v1 | 100,096 | 0, 1, 2 | 80 s | 145.0, 500.0, 500.0 | 500.0 | >= 475 | yes |" in table
    assert ("| ppo | gym:CartPole-v1 | 100,096 | 0, 1, 2 | 80 s | 500.0, 200.0, 300.0 | 300.0 | >= 475 | **no** |"
            in table)
    assert "| a2c | gym:CartPole-v1 | 500,000 | not run | | | | >= 450 | |" in table
    assert len(table) == 2 + len(TASKS)


def test_write_table_replaces_only_the_marked_block(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\nintro\n{BEGIN}\nold\n{END}\nafter\n")
    write_table(doc, "| new |")
    text = doc.read_text()
    assert text.startswith("# Results\nintro\n" + BEGIN + "\n| new |\n")
    assert text.endswith(END + "\nafter\n") and "old" not in text
    fresh = tmp_path / "fresh.md"
    write_table(fresh, "| t |")
    assert fresh.read_text().startswith(BEGIN)


def test_unknown_task_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--only", "ppo-moon", "--root", str(tmp_path)])
    assert "unknown task 'ppo-moon'" in capsys.readouterr().err
    assert main(["--table-only", "--root", str(tmp_path), "--write", str(tmp_path / "r.md")]) == 0
    assert "not run" in (tmp_path / "r.md").read_text()


def test_a_seed_runs_the_two_commands_a_user_types(tmp_path):
    task = Task("ppo-counting", "ppo", "testing:counting", 512, 0.0)
    result = run_seed(task, 1, tmp_path)
    run_dir = tmp_path / "ppo-counting" / "seed-1"
    assert result["train_command"] == task.train_command(1, run_dir)
    assert result["eval_command"] == f"rlkernel eval {run_dir} --episodes 10"
    assert (result["seed"], result["frames"]) == (1, 512) and len(result["returns"]) == 10
    assert json.loads((run_dir / "result.json").read_text()) == result
    assert json.loads((run_dir / "config.json").read_text())["config"]["seed"] == 1
