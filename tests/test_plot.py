"""lr_jax.plot: every function returns Axes, saves a valid PNG and never imports matplotlib eagerly."""

import subprocess
import sys

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


def test_lr_find_plot(tmp_path):
  res = lr_find(quad, jnp.ones(2), jnp.zeros((3, 2)), optimizer=optax.sgd, num_repeats=2, min_lr=1e-4)
  ax = res.plot()
  assert isinstance(ax, matplotlib.axes.Axes) and ax.get_xscale() == "log"
  labels = [ln.get_label() for ln in ax.get_lines()]
  assert any(lbl.startswith("minimum:") for lbl in labels) and any(
    lbl.startswith("stopped at") for lbl in labels
  )
  saved_png(ax, tmp_path / "lr_find.png")


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
  saved_png(axes[0], tmp_path / "sweep.png")
  _, own = plt.subplots()
  assert plot.sweep(res, ax=own) is own
  assert len(own.get_lines()) == int(res.valid.sum())


def test_import_lr_jax_does_not_import_matplotlib():
  code = "import sys, lr_jax, lr_jax.plot; print('matplotlib' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "False"
