"""The tutorial section "Learning the learning rate" (examples/learn_the_rate.py and its committed run).

The full run (a 60-point grid and 4 x 8 outer steps of ``lr_jax.tune``, at 500 and 50 steps) is not
repeated here: examples/learn_the_rate.json holds its numbers and printed lines. These tests check
that the script's own ``report`` gives exactly those lines, that the tutorial quotes them and every
number of its prose comes from them, that the claims the prose makes hold in those numbers, and that
the script runs end to end at a tiny size.
"""

import importlib.util
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from lr_jax import tasks

pytest.importorskip("sklearn")  # the digits data

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "examples" / "learn_the_rate.json"  # `python examples/learn_the_rate.py --steps 500 --json`
SECTION = "## Learning the learning rate"


def _script():
  spec = importlib.util.spec_from_file_location(
    "learn_the_rate_example", ROOT / "examples" / "learn_the_rate.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _doc():
  return json.loads(RESULTS.read_text())


def _section() -> str:
  text = (ROOT / "examples" / "README.md").read_text()
  return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def test_the_committed_results_are_what_the_script_reports():
  doc = _doc()
  assert doc["command"] == "python examples/learn_the_rate.py --steps 500"
  assert _script().report(doc) == doc["lines"]
  peaks, pcts = doc["peaks"], doc["pcts"]
  assert [h["num_steps"] for h in doc["horizons"].values()] == [500, 50]
  for h in doc["horizons"].values():
    grid = np.asarray(h["grid"], dtype=float)
    assert grid.shape == (len(peaks), len(pcts)) and np.all(np.isfinite(grid))
    i, j = np.unravel_index(np.argmin(grid), grid.shape)  # the grid's best is its minimum
    assert h["grid_best"] == {"peak_value": peaks[i], "pct_start": pcts[j], "loss": grid[i, j]}
    tp, tq, tv = (np.asarray(h[k], dtype=float) for k in ("tune_peak_value", "tune_pct_start", "tune_values"))
    assert tp.shape == tq.shape == tv.shape == (doc["outer_steps"] + 1, doc["starts"])
    assert h["tune_runs"] == tv.size
    # every point tune visited lies in the grid's box; start 0 is lr_find's suggestion
    assert np.all((tp >= min(peaks) * (1 - 1e-6)) & (tp <= max(peaks) * (1 + 1e-6)))
    assert np.all((tq > min(pcts)) & (tq < max(pcts)))
    np.testing.assert_allclose(
      [tp[0, 0], tq[0, 0]], [doc["init"]["peak_value"], doc["init"]["pct_start"]], rtol=1e-6
    )
    np.testing.assert_allclose(
      doc["init"]["peak_value"], np.clip(doc["lr_find_suggestion"], min(peaks), max(peaks))
    )
    # tune's best is the lowest point of all its trajectories
    b = h["tune_best"]
    k, s = np.unravel_index(np.nanargmin(tv), tv.shape)
    assert (b["outer_step"], b["start"]) == (k, s) and b["loss"] == pytest.approx(tv[k, s], rel=1e-6)
    np.testing.assert_allclose([b["peak_value"], b["pct_start"]], [tp[k, s], tq[k, s]], rtol=1e-5)


def test_the_claims_of_the_tutorial_hold_in_the_committed_run():
  long, short = _doc()["horizons"].values()
  # on 500 steps tune beats the grid's best cell, with fewer runs
  assert long["tune_best"]["loss"] < long["grid_best"]["loss"] and long["tune_runs"] < np.size(long["grid"])
  # the short horizon picks a larger peak (grid), 3.6x; the best loss over pct_start moves right
  ratio = short["grid_best"]["peak_value"] / long["grid_best"]["peak_value"]
  assert f"{ratio:.1f}x" == "3.6x"
  readme = (ROOT / "README.md").read_text()  # the README's "Tuning by gradient" quotes the ratio
  assert f"a 50-step one-cycle run wants a {ratio:.1f}x larger peak" in " ".join(readme.split())
  assert np.argmin(np.min(short["grid"], axis=1)) > np.argmin(np.min(long["grid"], axis=1))
  # each horizon's picks lose on the other horizon
  for here, other in ((short, long), (long, short)):
    for who in ("grid_best", "tune_best"):
      assert here["on_other_horizon"][who] > other["grid_best"]["loss"]


def test_the_tutorial_quotes_the_committed_results():
  doc = _doc()
  section = _section()
  block = re.search(r"```text\n(python examples/learn_the_rate.py.*?)\n(.*?)```", section, flags=re.DOTALL)
  assert block is not None
  assert block.group(1) == doc["command"] and block.group(2).rstrip("\n").split("\n") == doc["lines"]
  assert (
    "figures/learn_the_rate.png" in section
    and (ROOT / "examples" / "figures" / "learn_the_rate.png").exists()
  )
  # every result in the prose (a number with 2+ decimals) is one of the run's numbers as printed (.3g or .4f)
  values = []
  for h in doc["horizons"].values():
    values += [
      x for row in h["grid"] + h["tune_peak_value"] + h["tune_pct_start"] + h["tune_values"] for x in row
    ]
    values += [*h["on_other_horizon"].values(), *h["grid_best"].values(), *h["tune_best"].values()]
  shown = {f"{x:.3g}" for x in values} | {f"{x:.4f}" for x in values} | {f"{x:.2f}" for x in values}
  prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL)
  numbers = re.findall(r"(?<![\w^.-])\d+\.\d{2,}(?![\w.])", prose)
  assert len(numbers) > 25 and not set(numbers) - shown, set(numbers) - shown


def test_the_script_runs_end_to_end(tmp_path, monkeypatch):
  """``main`` with ``--json`` and ``--figure``: a 2 x 2 grid, 2 starts x 1 outer step, 10 steps, on the
  linear-regression task (the digits MLP of the full run compiles for seconds)."""
  script = _script()
  monkeypatch.setattr(script, "PEAKS", [0.01, 0.1])
  monkeypatch.setattr(script, "PCTS", [0.2, 0.4])
  monkeypatch.setattr(script, "STARTS", 2)
  monkeypatch.setattr(script, "OUTER_STEPS", 1)
  monkeypatch.setattr(script, "FINDER_STEPS", 10)
  monkeypatch.setattr(script, "SHORT", 1)  # both horizons 10 steps: every program compiles once
  # the linear-regression task in place of the digits MLP: the same calls, a fraction of the compiles
  task = tasks.make("linreg")
  first = jax.tree_util.tree_map(lambda b: b[0], task.batches)
  monkeypatch.setattr(
    script, "problem", lambda: (task.loss_fn, task.params, task.batches, lambda p: task.loss_fn(p, first))
  )
  # run()'s defaults were bound at definition: pass the small sizes through a wrapper
  small = script.run
  monkeypatch.setattr(script, "run", lambda n: small(n, [0.01, 0.1], [0.2, 0.4], 2, 1))
  out_json, out_png = tmp_path / "r.json", tmp_path / "f.png"
  assert script.main(["--steps", "10", "--json", str(out_json), "--figure", str(out_png)]) == 0
  doc = json.loads(out_json.read_text())
  assert doc["lines"] == script.report(doc) and len(doc["lines"]) == 7
  assert [h["num_steps"] for h in doc["horizons"].values()] == [10, 10]
  for h in doc["horizons"].values():
    assert np.asarray(h["grid"]).shape == (2, 2) and np.asarray(h["tune_values"]).shape == (2, 2)
    assert np.all(np.isfinite(h["grid"]))
  assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(SystemExit) as e:  # below the minimum: a one-line error, exit 2
    script.main(["--steps", "5"])
  assert e.value.code == 2
