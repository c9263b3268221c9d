"""The learning benchmark's bookkeeping: its task list, the results table, the Markdown update."""

from __future__ import annotations

import json

import pytest

from rlkernel_algos.recipes import RECIPE_NAMES
from rlkernel_algos.recipes.learn import BEGIN, END, TASKS, main, render_table, write_table


def test_tasks_cover_every_recipe_and_the_targets():
    assert {t.algo for t in TASKS} == set(RECIPE_NAMES)
    by_name = {t.name: t for t in TASKS}
    assert (by_name["ppo-cartpole"].frames, by_name["ppo-cartpole"].target) == (100_000, 475.0)
    assert by_name["sac-hopper"].long and not by_name["sac-pendulum"].long
    assert by_name["ppo-cartpole"].train_command("runs/x") == (
        "rlkernel train ppo --env gym:CartPole-v1 --frames 100000 --seed 0 --run-dir runs/x"
    )


def test_table_lists_run_and_missing_tasks(tmp_path):
    (tmp_path / "dqn-cartpole").mkdir()
    (tmp_path / "dqn-cartpole" / "eval.json").write_text(json.dumps({
        "algo": "dqn", "env": "gym:CartPole-v1", "frames": 100096, "seed": 0, "train_wall_time_s": 83.4,
        "mean": 500.0, "std": 0.0, "target": 475.0, "passed": True,
    }))
    table = render_table(tmp_path).splitlines()
    assert table[0].startswith("| algo | env | frames | seed | train wall time |")
    assert "| dqn | gym:CartPole-v1 | 100,096 | 0 | 83 s | 500.0 ± 0.0 | >= 475 | yes |" in table
    assert "| ppo | gym:CartPole-v1 | 100,000 | 0 | not run | | >= 475 | |" in table
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
