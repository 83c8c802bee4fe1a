"""The tutorial section "Learning the learning rate" (examples/learn_the_rate.py and its committed run).

The full run (a 60-point grid and 4 x 8 outer steps of ``lr_jax.tune``, at 500 and 50 steps) is not
repeated here: examples/learn_the_rate.json holds its numbers and printed lines. These tests check
that the script's own ``report`` gives exactly those lines, that the tutorial quotes them and every
number of its prose comes from them, that the claims the prose makes hold in those numbers, and that
the script runs end to end at a tiny size.
"""

import contextlib
import importlib.util
import io
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
  # tune does not show the shift: its two picks' peaks are within 3% of each other, on 50 steps it is
  # behind the grid
  assert abs(np.log(short["tune_best"]["peak_value"] / long["tune_best"]["peak_value"])) < 0.03
  assert short["tune_best"]["loss"] > short["grid_best"]["loss"]
  # the 500-step curve (best over pct_start) is flat around its minimum: its two lowest points are
  # neighbours within 1% of each other
  curve = np.min(np.asarray(long["grid"]), axis=1)
  first, second = np.argsort(curve)[:2]
  assert abs(int(first) - int(second)) == 1 and curve[second] < 1.01 * curve[first]
  peaks, prose = _doc()["peaks"], " ".join(_section().split())
  quoted = f"({curve[first]:.4f} at a peak of {peaks[first]:.3g}, {curve[second]:.4f} at {peaks[second]:.3g})"
  assert f"flat around its minimum {quoted}" in prose


def test_the_trajectories_do_what_the_tutorial_says():
  """The prose's account of each start of tune, at 500 steps (start 0 is lr_find's suggestion)."""
  long, short = _doc()["horizons"].values()
  tp, tv = (np.asarray(long[k], dtype=float) for k in ("tune_peak_value", "tune_values"))
  # starts 0 and 1: first up to larger peaks, then down to smaller peaks than their start and a later peak
  tq = np.asarray(long["tune_pct_start"], dtype=float)
  for s in (0, 1):
    k = int(np.argmax(tp[:, s]))
    assert k >= 1 and np.all(np.diff(tp[: k + 1, s]) > 0) and np.all(np.diff(tp[k:, s]) < 0)
    assert tp[-1, s] < tp[0, s] and tq[-1, s] > tq[0, s]
  assert (
    np.argmin(tv[:, 0]) == 5 and np.argmin(tv[:, 1]) == 0
  )  # best after five outer steps; never beats its start
  # start 2 (the smallest peak) climbs into the valley and is at its best at the end
  assert tp[0, 2] == min(tp[0]) and np.argmin(tv[:, 2]) == len(tv) - 1
  # start 3 jumps to a larger, worse peak, then backs off halfway (in log peak) to its start, and
  # reaches the best point of all
  assert tp[1, 3] > tp[0, 3] and tv[1, 3] > tv[0, 3]
  np.testing.assert_allclose(tp[2, 3], np.sqrt(tp[0, 3] * tp[1, 3]), rtol=1e-4)
  assert long["tune_best"]["start"] == 3
  prose = " ".join(_section().split())  # the numbers the prose gives for each start are theirs
  assert f"at its best, {tv[5, 0]:.4f}, after five outer steps" in prose
  assert f"never beats its starting point, {tv[0, 1]:.4f}" in prose
  assert f"starts at {tp[0, 2]:.3g} climbs the slope into the valley ({tv[-1, 2]:.4f})" in prose
  assert (
    f"starts at {tp[0, 3]:.3g} first jumps to {tp[1, 3]:.3g}, where the run is unstable ({tv[1, 3]:.4f})"
    in prose
  )
  assert f"backs off halfway (to {tp[2, 3]:.3g}, the geometric midpoint)" in prose
  # at 50 steps one start ends at the box's edge, peak 0.3, with its loss growing over its last steps
  sp, sv = (np.asarray(short[k], dtype=float) for k in ("tune_peak_value", "tune_values"))
  edge = [s for s in range(sp.shape[1]) if sp[-1, s] == pytest.approx(0.3, rel=1e-5)]
  assert len(edge) == 1 and np.all(np.diff(sv[-4:, edge[0]]) > 0)


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
  values = list(doc["peaks"])
  for h in doc["horizons"].values():
    values += [
      x for row in h["grid"] + h["tune_peak_value"] + h["tune_pct_start"] + h["tune_values"] for x in row
    ]
    values += [*h["on_other_horizon"].values(), *h["grid_best"].values(), *h["tune_best"].values()]
  shown = {f"{x:.3g}" for x in values} | {f"{x:.4f}" for x in values} | {f"{x:.2f}" for x in values}
  plain, hd = _online()  # the paragraph on online HD-Adam quotes the committed bench instead
  shown |= {f"{x:.4f}" for x in plain["eval"] + hd["eval"]} | {f"{hd['beta']:g}"}
  prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL)
  numbers = re.findall(r"(?<![\w^.-])\d+\.\d{2,}(?![\w.])", prose)
  assert len(numbers) > 25 and not set(numbers) - shown, set(numbers) - shown


def test_the_figure_draws_the_committed_run(tmp_path, monkeypatch):
  """``figure`` on the committed run (what examples/figures/learn_the_rate.png shows): every panel and
  colour bar labelled, log peak axes, no legend over a panel, and each mark where the run puts it."""
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.backends.backend_agg import FigureCanvasAgg

  doc = _doc()
  kept = []
  monkeypatch.setattr(plt, "close", kept.append)  # keep the figure to look at it
  _script().figure(doc, str(tmp_path / "f.png"))
  (fig,) = kept
  assert fig.get_layout_engine() is not None
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  renderer = canvas.get_renderer()
  panels = [ax for ax in fig.axes if ax.get_title()]
  bars = [ax for ax in fig.axes if not ax.get_title()]
  assert [ax.get_title() for ax in panels] == [
    "500 training steps", "50 training steps", "the best rate depends on the horizon"
  ]  # fmt: skip
  assert [ax.get_ylabel() for ax in bars] == [f"held-out loss after {n} steps" for n in (500, 50)]
  for ax in panels:
    assert ax.get_xlabel() == "peak_value (log scale)" and ax.get_xscale() == "log" and ax.get_ylabel()
  for ax in fig.axes:
    legend = ax.get_legend()
    if legend is not None:  # below the panels, covering none of them
      box = legend.get_window_extent(renderer)
      assert not any(box.overlaps(other.get_window_extent(renderer)) for other in panels), ax.get_title()

  def marks(ax):
    return {line.get_label(): np.asarray(line.get_xydata(), dtype=float) for line in ax.get_lines()}

  for ax, h in zip(panels[:2], doc["horizons"].values(), strict=True):
    drawn = marks(ax)
    np.testing.assert_allclose(
      drawn["grid's best"], [[h["grid_best"]["peak_value"], h["grid_best"]["pct_start"]]]
    )
    np.testing.assert_allclose(
      drawn["tune's best"], [[h["tune_best"]["peak_value"], h["tune_best"]["pct_start"]]]
    )
    paths = [np.asarray(line.get_xydata()) for line in ax.get_lines() if line.get_linestyle() == "-"]
    tp, tq = np.asarray(h["tune_peak_value"]), np.asarray(h["tune_pct_start"])
    assert len(paths) == doc["starts"]
    for s, xy in enumerate(paths):  # one white path per start, a dot per outer step
      np.testing.assert_allclose(xy, np.column_stack([tp[:, s], tq[:, s]]))
  drawn = marks(panels[2])
  for h in doc["horizons"].values():
    n = h["num_steps"]
    curve = np.min(np.asarray(h["grid"]), axis=1)
    np.testing.assert_allclose(drawn[f"{n} steps (best pct_start)"], np.column_stack([doc["peaks"], curve]))
    np.testing.assert_allclose(
      drawn[f"grid's best, {n} steps"], [[h["grid_best"]["peak_value"], curve.min()]]
    )
    np.testing.assert_allclose(
      drawn[f"tune's best, {n} steps"], [[h["tune_best"]["peak_value"], h["tune_best"]["loss"]]]
    )
  plt.close(fig)


def _online():
  """Plain Adam's and HD-Adam's (multiplicative, hypergrad_lr 0.02) rows on the digits MLP in the
  committed bench/hypergradient_online.json (the top-level README's table; tests/test_readme.py checks
  that the bench's report makes those lines of it)."""
  doc = json.loads((ROOT / "bench" / "hypergradient_online.json").read_text())
  assert doc["command"] == "python bench/bench_hypergradient_online.py --steps 400" and doc["steps"] == 400
  rows = {(r["family"], r["rule"], r["beta"]): r for r in doc["tasks"]["digits"]["rows"]}
  return rows["adam", None, None], rows["adam", "multiplicative", 0.02]


def test_the_online_paragraph_quotes_the_committed_bench():
  plain, hd = _online()
  (small, tuned, large), ratio = plain["eval"], hd["final_lr_ratio"]
  assert plain["final_lr_ratio"] == [0.1, 1.0, 10.0]  # the starts: tuned / 10, tuned, tuned * 10
  prose = " ".join(_section().split())
  assert (
    f"Adam (400 updates; `bench/bench_hypergradient_online.py`, whose table is in the top-level README),"
    f" started at a rate 10x too small, plain Adam ends at {small:.4f} and HD-Adam (multiplicative rule,"
    f" `hypergrad_lr` {hd['beta']:g}) at {hd['eval'][0]:.4f}; 10x too large, {large:.4f} and"
    f" {hd['eval'][2]:.4f}; the tuned rate gives {tuned:.4f}. Its rates end at {ratio[0]:.1f}x and"
    f" {ratio[2]:.1f}x the tuned one: it repairs most of a bad guess"
  ) in prose
  for k in (0, 2):  # most of the gap to the tuned rate closed, from either side; the rate moved towards it
    assert hd["eval"][k] - tuned < 0.25 * (plain["eval"][k] - tuned)
    assert abs(np.log(ratio[k])) < abs(np.log(plain["final_lr_ratio"][k]))


def test_the_script_runs_end_to_end(tmp_path, monkeypatch):
  """``main`` with ``--json``: a 2 x 2 grid, 2 starts x 1 outer step of ``lr_jax.tune``, 10 steps, on
  the linear-regression task (the digits MLP of the full run compiles for seconds; the full run's
  numbers and figure are checked above)."""
  script = _script()
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
  out_json = tmp_path / "r.json"
  with contextlib.redirect_stdout(io.StringIO()) as printed:
    assert script.main(["--steps", "10", "--json", str(out_json)]) == 0
  doc = json.loads(out_json.read_text())
  assert printed.getvalue().rstrip("\n").split("\n") == doc["lines"] == script.report(doc)
  assert len(doc["lines"]) == 7 and doc["init"]["pct_start"] == 0.3
  np.testing.assert_allclose(doc["init"]["peak_value"], np.clip(doc["lr_find_suggestion"], 0.01, 0.1))
  assert [h["num_steps"] for h in doc["horizons"].values()] == [10, 10]
  for h in doc["horizons"].values():
    assert np.asarray(h["grid"]).shape == (2, 2) and np.all(np.isfinite(h["grid"]))
    tv = np.asarray(h["tune_values"])
    assert tv.shape == (2, 2) and np.all(np.isfinite(tv)) and h["tune_runs"] == 4
    np.testing.assert_allclose(h["tune_peak_value"][0][0], doc["init"]["peak_value"], rtol=1e-6)
    assert np.all(np.isfinite(list(h["on_other_horizon"].values())))
  with pytest.raises(SystemExit) as e:  # below the minimum: a one-line error, exit 2
    script.main(["--steps", "5"])
  assert e.value.code == 2
