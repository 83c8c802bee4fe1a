"""lr_jax.plot: every function returns Axes, saves a valid PNG and never imports matplotlib eagerly."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest

from lr_jax import lr_find, plot, schedules, sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def quad(w, b):
  return jnp.sum((w - b) ** 2)


@pytest.fixture(autouse=True)
def _close_figures():
  yield
  plt.close("all")


def saved_png(ax, path):
  ax.figure.savefig(path)
  data = path.read_bytes()
  assert data[:8] == PNG_MAGIC
  img = matplotlib.image.imread(path)
  assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
  return img


def test_schedules_plot(tmp_path):
  ax = plot.schedules(
    {"cosine": schedules.cosine_annealing(1.0, 50), "short": schedules.cosine_annealing(0.5, 10)}, 60
  )
  assert isinstance(ax, matplotlib.axes.Axes)
  lines = ax.get_lines()
  assert [ln.get_label() for ln in lines] == ["cosine", "short"]
  np.testing.assert_allclose(lines[0].get_ydata()[[0, 25, 50]], [1.0, 0.5, 0.0], atol=1e-6)
  saved_png(ax, tmp_path / "schedules.png")
  _, own = plt.subplots()
  assert plot.schedules(schedules.cosine_annealing(1.0, 10), np.arange(0, 20, 2), ax=own) is own


def legend_texts(ax):
  legend = ax.get_legend() or ax.figure.legends[0]
  return [t.get_text() for t in legend.get_texts()]


def inside(inner, outer, tol=1.0):
  return (
    inner.x0 >= outer.x0 - tol
    and inner.x1 <= outer.x1 + tol
    and inner.y0 >= outer.y0 - tol
    and inner.y1 <= outer.y1 + tol
  )


def overlaps(a, b):
  return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_lr_find_plot(tmp_path):
  res = lr_find(quad, jnp.ones(2), jnp.zeros((3, 2)), optimizer=optax.sgd, num_repeats=2, min_lr=1e-4)
  ax = res.plot()
  assert isinstance(ax, matplotlib.axes.Axes) and ax.get_xscale() == "log"
  texts = legend_texts(ax)
  assert any(t.startswith("stopped at") for t in texts)
  assert any(t.startswith("suggestion") and "(lr at the minimum / 10)" in t for t in texts), texts
  saved_png(ax, tmp_path / "lr_find.png")


def test_lr_find_plot_shows_the_raw_losses_and_keeps_its_labels(tmp_path):
  # Noisy batches: the raw losses scatter around the smoothed curve, and the ramp diverges at the end.
  batches = jnp.asarray(np.random.default_rng(0).normal(size=(20, 2)), jnp.float32)
  res = lr_find(quad, jnp.ones(2), batches, optimizer=optax.sgd, num_steps=60, min_lr=1e-3, max_lr=10.0)
  ax = plot.lr_find(res)
  saved_png(ax, tmp_path / "lr_find.png")
  lo, hi = ax.get_ylim()
  raw, smooth = np.asarray(res.losses), np.asarray(res.smoothed_losses)
  stop = int(np.nanargmin(smooth)) + 1
  assert (
    lo <= np.nanmin(raw[:stop]) and np.nanmax(raw[:stop]) <= hi
  )  # was: limits from the smoothed curve only
  above = int(np.sum(raw[: len(raw) if res.diverged_at is None else res.diverged_at + 1] > hi))
  texts = legend_texts(ax)
  assert texts[0] == ("loss" if not above else f"loss ({above} points above the axes)")
  i = int(np.nanargmin(smooth))
  assert any(t == f"smoothed minimum at lr {res.lrs[i]:.2e}" for t in texts)
  assert ax.get_ylabel() == "training loss" and ax.get_xlabel() == "learning rate"
  fig = ax.figure
  renderer = fig.canvas.get_renderer()
  box = fig.bbox
  for label in (ax.xaxis.label, ax.yaxis.label):  # savefig used to cut the x-label
    assert inside(label.get_window_extent(renderer), box)
  assert not overlaps(
    (ax.get_legend() or fig.legends[0]).get_window_extent(renderer), ax.get_window_extent(renderer)
  )


def test_sweep_plot(tmp_path):
  res = sweep(
    quad,
    jnp.ones(2),
    jnp.zeros((1, 2)),
    optimizer=lambda h: optax.sgd(h["lr"], momentum=h["m"]),
    grid={"lr": [0.01, 0.1, 5.0], "m": [0.0, 0.9]},
    num_steps=8,
  )
  axes = res.plot()
  assert len(axes) == 3 and all(isinstance(a, matplotlib.axes.Axes) for a in axes)
  assert axes[1].get_xlabel() == "lr" and axes[1].get_xscale() == "log"
  assert axes[1].get_ylabel() == "train loss (lower is better)"
  assert len(legend_texts(axes[0])) == int(res.valid.sum())  # every curve labelled
  saved_png(axes[0], tmp_path / "sweep.png")
  _, own = plt.subplots()
  assert plot.sweep(res, ax=own) is own
  assert len(own.get_lines()) == int(res.valid.sum())


def noisy_quad(w, b):
  return jnp.sum((w - b[0]) ** 2) + 0.1 * jnp.sum(b[1] * w) + 1.0


SEEDED = sweep(
  noisy_quad,
  None,
  jnp.stack([jnp.zeros((3, 2)), jnp.ones((3, 2))], axis=1),
  init_fn=lambda key: jax.random.normal(key, (2,)),
  seeds=3,  # issue 12: a keyword, no longer a grid axis
  optimizer=lambda h: optax.sgd(h["lr"] * (1 + h["k"])),
  grid={"lr": [0.01, 0.05, 0.1], "k": [0, 1]},
  num_steps=6,
  eval_fn=lambda w: -jnp.sum(w**2),
  eval_mode="max",
)


def test_sweep_plot_aggregates_seeds_and_names_the_metric(tmp_path):
  axes = plot.sweep(SEEDED, metric="minus squared norm", categories={"k": ["slow", "fast"]})
  saved_png(axes[0], tmp_path / "sweep.png")
  curves, by_lr, by_k = axes
  assert len(curves.get_lines()) == 6  # 3 lr x 2 k; the 3 seeds of each are one mean curve (was 18)
  assert len(curves.collections) == 6  # a min-max band per curve
  assert legend_texts(curves) == [f"lr={lr:.3g}, k={k}" for lr in (0.01, 0.05, 0.1) for k in ("slow", "fast")]
  assert curves.get_legend().get_title().get_text() == "mean of 3 seeds, band: min-max"
  assert curves.get_ylabel() == "training loss (mean over seeds)"
  losses = np.asarray(SEEDED.by_seed.losses).reshape(3, 2, 3, -1)  # grid order: lr, k; then seeds
  np.testing.assert_allclose(curves.get_lines()[1].get_ydata(), losses[0, 1].mean(0), rtol=1e-6)
  band = curves.collections[1].get_paths()[0].vertices[:, 1]  # the min-max band of the seeds of line 1
  assert np.isclose(band.min(), losses[0, 1].min(), rtol=1e-6) and np.isclose(band.max(), losses[0, 1].max())
  for a in (by_lr, by_k):
    assert a.get_ylabel() == "minus squared norm (higher is better)"
  assert [t.get_text() for t in by_k.get_xticklabels()] == ["slow", "fast"]  # categorical: 2 ticks, not 0..1
  left, right = by_k.get_xlim()
  assert left < 0 and right > 1
  assert legend_texts(by_lr) == ["k=slow", "k=fast"] and legend_texts(by_k) == [
    "lr=0.01",
    "lr=0.05",
    "lr=0.1",
  ]
  ev = np.asarray(SEEDED.by_seed.eval).reshape(3, 2, 3)
  x, y = by_k.get_lines()[0].get_data()
  np.testing.assert_allclose(np.asarray(y, float), ev[0].mean(-1), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(x, float), [0, 1])
  lo, hi = by_k.get_ylim()
  assert lo <= ev.min() and ev.max() <= hi


def test_sweep_plot_colours_many_curves_by_a_colorbar():
  res = sweep(
    quad,
    jnp.ones(2),
    jnp.zeros((1, 2)),
    optimizer=lambda h: optax.sgd(h["lr"] * (1 + h["k"])),
    grid={"lr": list(np.geomspace(1e-3, 0.3, 12)), "k": [0, 1]},
    num_steps=5,
  )
  curves = plot.sweep(res)[0]
  assert curves.get_title() == "best configuration for each lr"
  assert len(curves.get_lines()) == 12 and curves.get_legend() is None
  bars = [a for a in curves.figure.axes if a.get_ylabel() == "lr"]
  assert len(bars) == 1  # the colorbar names the colouring hyperparameter


def test_schedules_plot_labels():
  ax = plot.schedules(
    [schedules.constant(0.5), schedules.constant(0.5), schedules.one_cycle_momentum(100)], 10
  )
  texts = legend_texts(ax)
  assert len(ax.get_lines()) == 2 and texts[:2] == ["constant(value=0.5)", "constant(value=0.5) [2]"]
  assert ax.get_ylabel() == "learning rate"
  twin = [a for a in ax.figure.axes if a is not ax]
  assert [a.get_ylabel() for a in twin] == ["momentum"] and len(twin[0].get_lines()) == 1
  assert plot.schedules(schedules.one_cycle_momentum(100), 10).get_ylabel() == "momentum"


def test_import_lr_jax_does_not_import_matplotlib():
  code = "import sys, lr_jax, lr_jax.plot; print('matplotlib' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "False"


def test_lr_find_plot_shows_the_repeats_band_and_the_validation_curve(tmp_path):
  batches = jnp.asarray(np.random.default_rng(1).normal(size=(20, 2)), jnp.float32)
  res = lr_find(
    quad,
    jnp.ones(2),
    batches,
    optimizer=optax.sgd,
    num_steps=60,
    min_lr=1e-3,
    num_repeats=4,
    val_batches=batches[:3],
  )
  ax = res.plot()
  texts = legend_texts(ax)
  q25, q75 = res.suggestion_band
  assert any(
    t.startswith("quartiles of the repeats' suggestions") and f"{q25:.2e}..{q75:.2e}" in t for t in texts
  ), texts
  assert (
    any(t.startswith(f"suggestion {res.suggestion:.2e}, median of 4 repeats") for t in texts)
    and "each repeat's suggestion" in texts
  )
  assert ax.get_ylabel() == "validation loss"
  saved_png(ax, tmp_path / "lr_find_repeats.png")


def test_lr_find_grid_heat_map(tmp_path):
  from lr_jax import lr_find_grid

  res = lr_find_grid(
    quad,
    jnp.ones(2),
    jnp.zeros((3, 2)),
    optimizer=lambda lr, momentum: optax.sgd(lr, momentum=momentum),
    grid={"momentum": [0.0, 0.5, 0.9]},
    min_lr=1e-4,
    num_steps=40,
  )
  ax = res.plot()
  assert ax.get_xscale() == "log" and ax.get_ylabel() == "momentum"
  assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.5", "0.9"]
  quad_mesh = ax.collections[0]
  np.testing.assert_array_equal(
    np.ma.filled(quad_mesh.get_array(), np.nan).reshape(3, 40), res.smoothed_losses
  )
  texts = legend_texts(ax)
  assert "suggestion" in texts and any(t.startswith("lowest loss: momentum=") for t in texts), texts
  saved_png(ax, tmp_path / "lr_find_grid.png")
