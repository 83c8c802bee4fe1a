"""The ``lr-jax`` command line: every subcommand with tiny sizes, every error path.

Commands run in-process through ``main(argv)`` (one subprocess checks the installed console
script). Expected numbers come from closed forms and plain NumPy loops written here.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import matplotlib.image
import numpy as np
import pytest

import lr_jax
from lr_jax import cli, schedules, tasks
from lr_jax.cli import main


def run(capsys, *argv):
  rc = main(list(argv))
  out, err = capsys.readouterr()
  return rc, out, err


def table(out: str) -> np.ndarray:
  """The numeric rows of ``plot --table`` as an array (step first)."""
  return np.array([[float(v) for v in line.split()] for line in out.splitlines()[1:]])


def assert_png(path, min_bytes=10_000):
  data = Path(path).read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes
  image = matplotlib.image.imread(path)
  assert image.shape[0] > 200 and image.shape[1] > 200 and image[..., :3].std() > 0.05  # not blank


def test_plot_table_matches_closed_forms(capsys):
  rc, out, err = run(
    capsys, "plot", "step_decay", "init_value=2", "step_size=3", "gamma=0.5", "--steps", "8", "--table"
  )
  assert rc == 0 and err == ""
  rows = table(out)
  np.testing.assert_array_equal(rows[:, 0], np.arange(9))
  np.testing.assert_allclose(rows[:, 1], [2 * 0.5 ** (t // 3) for t in range(9)], rtol=1e-6)


def test_plot_overlays_groups_and_defaults_steps_to_total_steps(capsys):
  argv = ["plot", "cosine_annealing", "init_value=1", "total_steps=20", "+", "cyclic", "base_value=0.1", "max_value=1",
          "step_size_up=5", "mode=triangular2", "--table"]  # fmt: skip
  rc, out, _ = run(capsys, *argv)
  assert rc == 0
  assert out.splitlines()[0].split()[1:3] == ["cosine_annealing(init_value=1,", "total_steps=20)"]
  rows = table(out)
  t = rows[:, 0]
  assert t[0] == 0 and t[-1] == 20 and len(t) == 11  # default: 0..total_steps, 11 rows
  np.testing.assert_allclose(rows[:, 1], [(1 + math.cos(math.pi * s / 20)) / 2 for s in t], atol=1e-6)
  tri2 = [0.1 + 0.9 * max(0, 1 - abs(s / 5 - 2 * (s // 10) - 1)) / 2 ** (s // 10) for s in t]
  np.testing.assert_allclose(rows[:, 2], tri2, atol=1e-6)


@pytest.fixture
def saved(monkeypatch):
  """``{file name: Axes}`` of every figure the CLI saves (kept open for inspection)."""
  figures = {}
  real = cli._save

  def keep(ax, path):
    figures[Path(path).name] = ax
    real(ax, path)  # savefig draws: the layout (and so every position checked below) is the PNG's

  monkeypatch.setattr(cli, "_save", keep)
  return figures


def legend_of(ax):
  return ax.get_legend() or (ax.figure.legends[0] if ax.figure.legends else None)


def assert_legend_off_the_axes(ax):
  box, axes_box = legend_of(ax).get_window_extent(), ax.get_window_extent()
  assert box.x0 >= axes_box.x1 or box.y1 <= axes_box.y0 or box.y0 >= axes_box.y1, (box, axes_box)


def test_plot_draws_every_group_with_its_own_label(capsys, saved, tmp_path):
  base = ["base_value=0.001", "max_value=0.006", "step_size_up=2000"]
  argv = ["plot", "cyclic", *base, "mode=triangular", "+", "cyclic", *base, "mode=triangular2", "+",
          "warmup", 'schedule={"name": "constant", "value": 1}', "warmup_steps=5", "+",
          "warmup", 'schedule={"name": "cosine_annealing", "init_value": 1, "total_steps": 50}', "warmup_steps=5",
          "+", "constant", "value=0.5", "+", "constant", "value=0.5", "--out", str(tmp_path / "x.png")]  # fmt: skip
  assert run(capsys, *argv)[0] == 0
  ax = saved["x.png"]
  lines = ax.get_lines()
  assert len(lines) == 6  # was 4: groups with the same label were one dict entry
  texts = [t.get_text().replace("\n  ", " ") for t in legend_of(ax).get_texts()]
  assert len(set(texts)) == 6
  assert any("mode=triangular)" in t for t in texts) and any("mode=triangular2)" in t for t in texts)
  assert any("schedule=constant(value=1)" in t for t in texts)
  assert any("schedule=cosine_annealing(init_value=1" in t for t in texts)
  assert texts[-1].endswith("[2]")
  assert lines[0].get_xdata()[-1] == 12000  # default: three cycles of the cyclic schedule
  assert not np.array_equal(lines[0].get_ydata(), lines[1].get_ydata())
  assert_legend_off_the_axes(ax)


def test_plot_labels_momentum_as_momentum(capsys, saved, tmp_path):
  assert (
    run(capsys, "plot", "one_cycle_momentum", "total_steps=100", "--out", str(tmp_path / "m.png"))[0] == 0
  )
  ax = saved["m.png"]
  assert ax.get_ylabel() == "momentum" and ax.get_xlabel() == "step"
  argv = [
    "plot",
    *ONE_CYCLE,
    "+",
    "one_cycle_momentum",
    "total_steps=100",
    "--out",
    str(tmp_path / "both.png"),
  ]
  assert run(capsys, *argv)[0] == 0
  ax = saved["both.png"]
  twins = [a for a in ax.figure.axes if a is not ax]
  assert ax.get_ylabel() == "learning rate" and [a.get_ylabel() for a in twins] == ["momentum"]
  np.testing.assert_allclose(twins[0].get_lines()[0].get_ydata()[0], 0.95)
  assert_legend_off_the_axes(ax)


def test_readme_error_example(capsys):
  text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
  block = text.split("```text\n$ lr-jax plot cosine_annealing total_steps=100\n")[1].split("```")[0]
  rc, out, err = run(capsys, "plot", "cosine_annealing", "total_steps=100")
  assert rc == 2 and out == "" and err == block  # one line, exactly as the README shows it


def test_version(capsys):
  assert main(["--version"]) == 0
  assert capsys.readouterr().out.strip() == f"lr-jax {lr_jax.__version__}"


def test_sweep_with_one_step_runs(capsys):
  rc, out, err = run(
    capsys, "sweep", *LINREG[:2], "--steps", "1", "--schedule", "constant", "--peak", "0.1:1:2"
  )
  assert rc == 0, err
  assert len(out.splitlines()) == 5 and "best: peak" in out


def test_plot_writes_a_png(capsys, tmp_path):
  path = tmp_path / "oc.png"
  rc, out, _ = run(capsys, "plot", "one_cycle", "peak_value=0.1", "total_steps=1000", "--out", str(path))
  assert rc == 0 and str(path) in out
  assert_png(path)


def test_plot_json_values_and_nested_schedules(capsys):
  rc, out, _ = run(
    capsys, "plot", "multistep_decay", "init_value=1", "milestones=[2, 4]", "--steps", "5", "--table", "+", "warmup",
    'schedule={"name": "constant", "value": 0.5}', "warmup_steps=2",
  )  # fmt: skip
  assert rc == 0
  rows = table(out.replace("multistep_decay(init_value=1, milestones=[2, 4])", "x").replace("warmup", "y"))
  np.testing.assert_allclose(rows[:, 1], [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  np.testing.assert_allclose(rows[:, 2], [0, 0.25, 0.5, 0.5, 0.5, 0.5], rtol=1e-6)


def test_find_on_linreg(capsys, tmp_path):
  path = tmp_path / "find.png"
  rc, out, err = run(capsys, "find", "--task", "linreg", "--steps", "30", "--min-lr", "1e-3", "--max-lr", "3",
                     "--out", str(path))  # fmt: skip
  assert rc == 0, err
  suggestion = float(out.split("suggested learning rate:")[1].split()[0])
  assert 1e-3 <= suggestion <= 3
  lrs = [
    float(line.split()[0]) for line in out.splitlines()[1:] if line.strip() and line.split()[0][0].isdigit()
  ]
  assert lrs[0] == pytest.approx(1e-3, rel=1e-3) and lrs == sorted(lrs)
  assert "find [" in err or "#" in err  # the progress bar
  assert_png(path)


def _suggested(out: str) -> float:
  return float(out.split("suggested learning rate:")[1].split()[0])


def test_find_repeats_and_val_match_lr_find(capsys):
  rc, out, err = run(capsys, "find", "--task", "linreg", "--steps", "20", "--min-lr", "1e-3", "--max-lr", "3",
                     "--repeats", "3", "--val", "--seed", "1")  # fmt: skip
  assert rc == 0, err
  assert "smoothed validation loss" in out.splitlines()[0]
  task = tasks.make("linreg", seed=1)
  xt, yt = tasks.linreg_data(seed=1043)  # the held-out points of make("linreg", seed=1), written out here
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    ref = lr_jax.lr_find(task.loss_fn, task.params, task.batches, min_lr=1e-3, max_lr=3.0, num_steps=20,
                         num_repeats=3, key=jax.random.key(1), val_batches=(xt[None], yt[None]),
                         optimizer=lambda lr: lr_jax.optimizers.sgd(lr, momentum=0.9))  # fmt: skip
  assert ref.curve == "validation loss" and len(ref.repeat_diverged_at) == 3
  assert _suggested(out) == pytest.approx(ref.suggestion, rel=2e-3)  # printed with 4 digits
  q25, q75 = ref.suggestion_band
  assert f"3 repeats, quartiles of their suggestions {q25:.3e}..{q75:.3e}" in out
  shown = {lr: float(v) for lr, v in (line.split() for line in out.splitlines()[1:-1])}
  for i, lr in enumerate(ref.lrs):
    if f"{lr:.3e}" in shown:
      assert shown[f"{lr:.3e}"] == pytest.approx(ref.smoothed_losses[i], abs=1e-4)


@pytest.mark.parametrize("name", tasks.TASKS)
def test_find_val_is_the_tasks_held_out_data(name):
  task = tasks.make(name, seed=2)
  x, y = (np.asarray(a)[0] for a in cli._held_out(name, 2))
  if name == "linreg":
    assert float(task.eval_fn(task.params)) == pytest.approx(float(tasks.linreg_loss(task.params, (x, y))))
    p = {"m": np.float32(3.0), "b": np.float32(2.0)}  # the true line: the MSE is the noise's
    assert float(task.eval_fn(p)) == pytest.approx(float(tasks.linreg_loss(p, (x, y))), rel=1e-6)
  else:
    assert x.shape == (450, 64)
    assert float(task.eval_fn(task.params)) == float(tasks.mlp_accuracy(task.params, x, y))


@pytest.mark.filterwarnings("ignore:.*still falling at max_lr:RuntimeWarning")  # said by tests/test_finder.py's still-falling tests
def test_find_grid_runs_one_ramp_per_value(capsys, tmp_path):
  argv = ["find", "--task", "linreg", "--steps", "20", "--min-lr", "1e-3", "--max-lr", "3"]
  rc, out, err = run(capsys, *argv, "--grid", "momentum=0,0.9", "--out", str(tmp_path / "g.png"))
  assert rc == 0, err
  rows = [line.split() for line in out.splitlines()[1:3]]
  assert [float(r[0]) for r in rows] == [0.0, 0.9]
  rc, plain, err = run(capsys, *argv)  # the default sgd is momentum 0.9: the same ramp as row 0.9
  assert rc == 0, err
  assert float(rows[1][1]) == pytest.approx(_suggested(plain), rel=1e-3)
  assert float(rows[0][1]) != pytest.approx(float(rows[1][1]), rel=1e-3)  # the keyword reached sgd
  best = min(rows, key=lambda r: float(r[2]))
  assert f"momentum={float(best[0]):.4g}, suggested learning rate: {float(best[1]):.3e}" in out
  assert_png(tmp_path / "g.png")


def test_sweep_on_linreg_matches_a_numpy_loop(capsys, tmp_path):
  rc, out, err = run(capsys, "sweep", "--task", "linreg", "--schedule", "cosine_annealing", "total_steps=30",
                     "--peak", "0.01:0.5:3", "--steps", "30", "--out", str(tmp_path / "sw"))  # fmt: skip
  assert rc == 0, err
  rows = [line.split() for line in out.splitlines()[1:4]]
  peaks = np.geomspace(0.01, 0.5, 3)
  np.testing.assert_allclose([float(r[0]) for r in rows], peaks, rtol=2e-3)  # printed with 3 digits
  xb, yb = (np.asarray(a, np.float64) for a in tasks.make("linreg").batches)
  xt, yt = tasks.linreg_data(seed=1042)
  for row, peak in zip(rows, peaks):  # SGD, momentum 0.9 (torch form), cosine from the peak over 30 steps
    p, buf = np.zeros(2), np.zeros(2)
    for t in range(30):
      r = p[0] * xb[t % 10] + p[1] - yb[t % 10]
      g = np.array([2 * np.mean(r * xb[t % 10]), 2 * np.mean(r)])
      buf = g if t == 0 else 0.9 * buf + g
      p = p - peak * (1 + math.cos(math.pi * t / 30)) / 2 * buf
    train = np.mean([np.mean((p[0] * xb[k] + p[1] - yb[k]) ** 2) for k in range(10)])  # every batch
    np.testing.assert_allclose(float(row[1]), train, rtol=1e-3, atol=1e-4)  # printed with 4 decimals
    np.testing.assert_allclose(float(row[2]), np.mean((p[0] * xt + p[1] - yt) ** 2), rtol=1e-3, atol=1e-4)
  assert "best: peak" in out and "lowest test mse" in out  # an error: lower is better
  best = min(rows, key=lambda r: float(r[2]))
  assert f"best: peak {float(best[0]):.3g} " in out
  assert_png(tmp_path / "sw" / "sweep.png")
  assert "![sweep](sweep.png)" in (tmp_path / "sw" / "sweep.md").read_text()


def test_demo_tiny(capsys, tmp_path, saved):
  out_dir = tmp_path / "demo"
  rc, out, err = run(capsys, "demo", "--out", str(out_dir), "--steps", "12")
  assert rc == 0, err
  # The sweep figure ranks as the text does: by test accuracy, highest first.
  best = next(line for line in out.splitlines() if line.startswith("best:"))
  assert "highest test accuracy" in best
  name, peak = best.split("best: ")[1].split(" (")[0].split(", peak ")
  left, right = saved["sweep.png"].figure.axes[:2]
  overall = [ln.get_label() for ln in left.get_lines() if "(best overall)" in ln.get_label()]
  assert overall == [f"{name}, peak {peak} (best overall)"]
  assert right.get_ylabel() == "test accuracy (higher is better)"
  rows = {
    r.split()[0]: [float(v) for v in r.split()[1:]] for r in out.split("test accuracy  ")[1].splitlines()[1:6]
  }
  for ln in right.get_lines():
    if ln.get_label() in rows:  # the plotted accuracies are the printed ones
      np.testing.assert_allclose(ln.get_ydata(), rows[ln.get_label()], atol=6e-5)
  assert max(max(v) for v in rows.values()) == pytest.approx(
    float(best.split(": ")[2].split(",")[0]), abs=1e-4
  )
  for name in ("fixed 0.5", "step decay", "exponential decay", "1/t decay"):
    line = next(row for row in out.splitlines() if row.startswith(name))
    m, b = (float(v) for v in line.split()[-2:])
    assert abs(m - 3) < 1 and abs(b - 2) < 1
  assert "suggested learning rate:" in out and "best:" in out
  assert "5 schedules x 8 peak rates" in out
  summary = (out_dir / "summary.md").read_text()
  for fig in ("schedules.png", "lr_find.png", "sweep.png"):
    assert f"]({fig})" in summary
    assert_png(out_dir / fig)
  assert "sweep [" in err or "#" in err  # progress bars


def test_help_exits_zero(capsys):
  assert main(["--help"]) == 0
  assert "demo" in capsys.readouterr().out


def _file(tmp_path) -> str:
  f = tmp_path / "a_file"
  f.write_text("x")
  return str(f)


ONE_CYCLE = ["one_cycle", "peak_value=0.1", "total_steps=100"]
LINREG = ["--task", "linreg", "--steps", "10"]


@pytest.mark.parametrize(
  "argv, expected",
  [
    (["plot", "nosuch"], ["unknown schedule 'nosuch'", "valid names:", "cosine_annealing", "one_cycle"]),
    (["plot", "one_cycle", "peak_value"], ["malformed argument 'peak_value'", "key=value"]),
    (["plot", "one_cycle", "=3"], ["malformed argument '=3'"]),
    (["plot", "one_cycle", "peak_value="], ["malformed argument 'peak_value='"]),
    (["plot", *ONE_CYCLE, "bogus=1"], ["one_cycle has no parameter 'bogus'", "pct_start"]),
    (["plot", *ONE_CYCLE, "total_steps=5"], ["'total_steps' given twice"]),
    (["plot", "peak_value=1"], ["expected a schedule name before 'peak_value=1'"]),
    (["plot", *ONE_CYCLE, "+"], ["empty schedule group"]),
    (["plot", *ONE_CYCLE, "--steps", "0", "--table"], ["--steps must be >= 1"]),
    (["plot", "cosine_annealing", "total_steps=100"],
     ["cosine_annealing: missing required argument 'init_value'", "init_value=VALUE"]),
    (["plot", "warmup", 'schedule={"name": "cosine_annealing", "total_steps": 9}', "warmup_steps=2"],
     ["cosine_annealing: missing required argument 'init_value'"]),
    (["plot", "warmup", "warmup_steps=2"], ["warmup: missing required argument 'schedule'"]),
    (["find", "--task", "linreg", "--steps", "0"], ["num_steps", "num_steps=0"]),
    (["find", "--task", "linreg", "--steps", "1"], ["num_steps", "num_steps=1"]),
    (["sweep", *LINREG[:2], "--steps", "0", "--schedule", "constant", "--peak", "0.1:1:2"], ["--steps must be >= 1"]),
    (["demo", "--steps", "0", "--out", "{dir}/d"], ["--steps must be >= 10, got --steps=0"]),
    (["demo", "--steps", "1", "--out", "{dir}/d"], ["--steps must be >= 10, got --steps=1"]),
    (["plot", *ONE_CYCLE, "--steps", "x"], ["argument --steps: invalid int value: 'x'"]),
    (["plot", *ONE_CYCLE, "--out", "{file}/x.png"], ["cannot write --out", "does not exist"]),
    (["plot", *ONE_CYCLE, "--out", "{dir}"], ["cannot write --out", "is a directory"]),
    (["plot", *ONE_CYCLE, "--out", "{dir}/" + "x" * 300 + ".png"], ["cannot write", "x" * 300]),  # savefig's OSError
    (["find", "--task", "mnist"], ["argument --task: invalid choice: 'mnist'"]),
    (["find", *LINREG, "--min-lr", "1", "--max-lr", "0.1"], ["lr_find", "max_lr", "min_lr=1.0"]),
    (["find", *LINREG, "--out", "{file}/f.png"], ["cannot write --out"]),
    (["sweep", *LINREG, "--schedule", "nosuch", "--peak", "0.1:1:2"], ["unknown schedule 'nosuch'", "constant"]),
    (["sweep", *LINREG, "--schedule", "cosine_annealing", "total_steps=0", "--peak", "0.1:1:2"],
     ["cosine_annealing: `total_steps` must be > 0, got total_steps=0."]),
    (["sweep", *LINREG, "--schedule", "cosine_annealing", "total_steps=9", "--peak", "abc"], ["--peak must be LO:HI:N"]),
    (["sweep", *LINREG, "--schedule", "cosine_annealing", "total_steps=9", "--peak", "1:0.1:3"], ["0 < LO <= HI"]),
    (["sweep", *LINREG, "--schedule", "join", "--peak", "0.1:1:2"], ["--peak cannot set a rate of 'join'"]),
    (["sweep", *LINREG, "--schedule", "cosine_annealing", "init_value=1", "total_steps=9", "--peak", "0.1:1:2"],
     ["--peak sets cosine_annealing's init_value"]),
    (["sweep", *LINREG, "--schedule", "cosine_annealing", "total_steps=9", "--peak", "0.1:1:2", "--out", "{file}/d"],
     ["cannot create --out directory"]),
    (["sweep", *LINREG, "--peak", "0.1:1:2"], ["the following arguments are required: --schedule"]),
    (["demo", "--out", "{file}/d"], ["cannot create --out directory", "a_file/d"]),
    ([], ["the following arguments are required: command"]),
    (["nosuch"], ["invalid choice: 'nosuch'"]),
    (["plot", *ONE_CYCLE, "--table", "+", "constant", "--bogus"], ["unrecognized arguments: + constant --bogus"]),
    (["find", *LINREG, "extra"], ["unrecognized arguments: extra"]),
    (["find", *LINREG, "--repeats", "0"], ["--repeats must be >= 1, got --repeats=0"]),
    (["find", *LINREG, "--grid", "foo=1,2"], ["--grid: sgd has no numeric keyword 'foo'", "weight_decay"]),
    (["find", *LINREG, "--optimizer", "adam", "--grid", "amsgrad=0,1"], ["adam has no numeric keyword 'amsgrad'"]),
    (["find", *LINREG, "--grid", "weight_decay=0,x"], ["--grid values must be numbers"]),
    (["find", *LINREG, "--grid", "weight_decay"], ["--grid must be KEY=V1,V2,..."]),
    (["find", *LINREG, "--grid", "weight_decay=0,nan"], ["--grid values must be finite"]),
    (["find", *LINREG, "--grid", "weight_decay=-1"], ["weight_decay"]),
  ],
)  # fmt: skip
def test_errors_exit_2_with_one_line(capsys, tmp_path, argv, expected):
  argv = [a.replace("{file}", _file(tmp_path)).replace("{dir}", str(tmp_path)) for a in argv]
  rc, _, err = run(capsys, *argv)
  assert rc == 2
  assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line, no traceback
  assert err.startswith("lr-jax") and "error:" in err
  for text in expected:
    assert text in err, err


def test_rejected_value_gives_the_schedules_own_message(capsys):
  with pytest.raises(ValueError) as info:
    schedules.one_cycle(0.1, total_steps=100, pct_start=1.5)
  rc, _, err = run(capsys, "plot", *ONE_CYCLE, "pct_start=1.5", "--table")
  assert rc == 2 and err == f"lr-jax plot: error: {info.value}\n"
  rc, _, err = run(capsys, "plot", "cyclic", "base_value=0.1", "max_value=1", "mode=bogus", "--table")
  assert rc == 2 and "cyclic: `mode` must be one of" in err and "mode='bogus'" in err


def test_console_script():
  script = Path(sys.executable).with_name("lr-jax")
  assert script.exists(), "the lr-jax console script is not installed in this environment"
  ok = subprocess.run([str(script), "plot", "step_decay", "init_value=1", "step_size=2", "--steps", "2", "--table"],
                      check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
  assert ok.returncode == 0 and table(ok.stdout)[:, 1].tolist() == [1.0, 1.0, 0.1]
