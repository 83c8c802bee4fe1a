"""``lr-jax search``: the subcommand on the tiny ``linreg`` task, its output files and its errors.

Expected rankings come from calling :func:`lr_jax.search` directly with the optimizer written out
(SGD with momentum 0.9, the CLI's default, and ``weight_decay`` for ``wd``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lr_jax
from lr_jax import optimizers, spaces, tasks
from lr_jax.cli import main

BASE = ["search", "--task", "linreg", "--steps", "20", "--space", "lr=log:1e-3:0.5", "--space", "wd=0,1e-4"]


def run(capsys, *argv):
  rc = main(list(argv))
  out, err = capsys.readouterr()
  return rc, out, err


def test_halving_matches_the_library_and_writes_json_and_figure(tmp_path, capsys):
  rc, out, err = run(capsys, *BASE, "--method", "halving", "--samples", "6", "--out", str(tmp_path))
  assert rc == 0, err
  doc = json.loads((tmp_path / "search.json").read_text())
  task = tasks.make("linreg")
  want = lr_jax.search(
    task.loss_fn, task.params, task.batches, space={"lr": spaces.log_uniform(1e-3, 0.5), "weight_decay": [0, 1e-4]},
    optimizer=lambda h: optimizers.sgd(h["lr"], momentum=0.9, weight_decay=h["weight_decay"]), num_steps=20,
    method="halving", num_samples=6, seed=0, eval_fn=task.eval_fn, eval_mode="min",
  )  # fmt: skip
  assert doc["method"] == "halving" and len(doc["trials"]) == 6
  assert doc["steps_trained"] == want.steps_trained < 6 * 20
  assert doc["best"]["lr"] == pytest.approx(want.best()["lr"], rel=1e-12)
  assert doc["best"]["eval"] == pytest.approx(want.best()["eval"], rel=1e-6)
  assert f"steps trained {want.steps_trained}" in out and "best: lr=" in out
  png = (tmp_path / "search.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_random_is_reproducible_from_its_seed_and_pbt_runs(capsys):
  outs = [run(capsys, *BASE, "--samples", "4", "--seed", s)[1] for s in ("3", "3", "4")]
  assert outs[0] == outs[1] and outs[0] != outs[2]
  rc, out, err = run(
    capsys, *BASE, "--method", "pbt", "--samples", "4", "--interval", "5", "--optimizer", "adam"
  )
  assert rc == 0, err
  assert "pbt on linreg (adam), 4 trials" in out and "steps trained 80" in out


@pytest.mark.parametrize(
  ("extra", "message"),
  [
    (["--space", "lr=log:1:0.1"], "`low` must be < `high`"),
    (["--space", "lr=cube:1:2"], "unknown kind 'cube'"),
    (["--space", "lr=log:1"], "needs two bounds"),
    (["--space", "lr=0.1", "--space", "zz=0.1"], "'zz' is not a hyperparameter of the optimizer"),
    (["--space", "wd=0,1e-4"], "must give the learning rate"),
    (["--space", "lr"], "must be NAME=SPEC"),
    (["--space", "lr=0.1,x"], "'x' is not a number"),
    (["--space", "lr=0.1", "--eta", "3"], "--eta is not an option of --method random"),
    (["--space", "lr=0.1", "--samples", "0"], "--samples must be >= 1"),
  ],
)
def test_bad_options_are_one_line_errors(capsys, extra, message):
  rc, out, err = run(capsys, "search", "--task", "linreg", "--steps", "5", *extra)
  assert rc == 2 and out == ""
  assert err.startswith("lr-jax search: error: ") and message in err and err.count("\n") == 1


def test_parse_space_kinds():
  from lr_jax._search_cli import parse_space

  space = parse_space(["lr=uniform:0.1:0.2", "b1=0.8,0.9", "eps=1e-8", "b2=int:1:3"], optimizers.adam)
  assert space == {"lr": spaces.uniform(0.1, 0.2), "b1": [0.8, 0.9], "eps": 1e-8, "b2": spaces.integer(1, 3)}
  assert Path(lr_jax.__file__).with_name("_search_cli.py").exists()
