"""The built-in tasks: data, losses and the ``fit`` trainer, against plain NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import optimizers, schedules, tasks


def test_linreg_data_is_the_tutorial_line():
  x, y = tasks.linreg_data()
  assert x.shape == y.shape == (100,) and x.dtype == y.dtype == np.float32
  assert 0 <= x.min() and x.max() < 1
  noise = y - (3 * x + 2)
  assert abs(noise.mean()) < 0.03 and 0.07 < noise.std() < 0.13  # N(0, 0.1^2), 100 draws
  x2, _ = tasks.linreg_data()
  np.testing.assert_array_equal(x, x2)  # deterministic
  np.testing.assert_array_equal(
    tasks.linreg_data(n=5, noise=0.0)[1], 3 * tasks.linreg_data(n=5, noise=0.0)[0] + 2
  )


def test_linreg_task_batches_and_loss():
  task = tasks.make("linreg")
  x, y = tasks.linreg_data()
  np.testing.assert_array_equal(np.asarray(task.batches[0]).ravel(), x)
  np.testing.assert_array_equal(np.asarray(task.batches[1]).ravel(), y)
  p = {"m": jnp.float32(1.5), "b": jnp.float32(-0.5)}
  np.testing.assert_allclose(tasks.linreg_loss(p, (x, y)), np.mean((1.5 * x - 0.5 - y) ** 2), rtol=1e-6)
  xt, yt = tasks.linreg_data(seed=1042)
  np.testing.assert_allclose(task.eval_fn(p), np.mean((1.5 * xt - 0.5 - yt) ** 2), rtol=1e-6)
  assert task.metric == "test_mse"


def test_fit_equals_a_numpy_sgd_loop():
  task = tasks.make("linreg")
  lr = schedules.step_decay(0.3, step_size=7, gamma=0.5)
  trail, losses = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(lr), 25, history=True)
  xb, yb = (np.asarray(a, np.float64) for a in task.batches)
  p = np.zeros(2)
  for t in range(25):
    x, y = xb[t % 10], yb[t % 10]
    r = p[0] * x + p[1] - y
    np.testing.assert_allclose(losses[t], np.mean(r**2), rtol=2e-5)  # the loss *before* update t
    p = p - 0.3 * 0.5 ** (t // 7) * np.array([2 * np.mean(r * x), 2 * np.mean(r)])
    np.testing.assert_allclose([trail["m"][t], trail["b"][t]], p, rtol=2e-5, atol=1e-6)
  final, _ = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(lr), 25)
  np.testing.assert_allclose([final["m"], final["b"]], p, rtol=2e-5)


def test_digits_data_and_mlp():
  d = tasks.digits_data()
  assert d["x_train"].shape == (1347, 64) and d["x_test"].shape == (450, 64)
  assert d["x_train"].min() == 0 and d["x_train"].max() == 1
  assert set(np.unique(d["y_train"])) == set(range(10))
  params = tasks.mlp_init(jax.random.key(0))
  assert [p["w"].shape for p in params] == [(64, 32), (32, 10)]
  x, labels = d["x_test"][:50], d["y_test"][:50]
  h = np.tanh(x @ np.asarray(params[0]["w"]) + np.asarray(params[0]["b"]))
  logits = h @ np.asarray(params[1]["w"]) + np.asarray(params[1]["b"])
  np.testing.assert_allclose(tasks.mlp_apply(params, x), logits, rtol=1e-4, atol=1e-5)
  logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  np.testing.assert_allclose(
    tasks.mlp_loss(params, (x, labels)), -logp[np.arange(50), labels].mean(), rtol=1e-5
  )
  np.testing.assert_allclose(tasks.mlp_accuracy(params, x, labels), np.mean(logits.argmax(1) == labels))


def test_digits_task_trains():
  task = tasks.make("digits")
  assert [a.shape for a in task.batches] == [(21, 64, 64), (21, 64)] and task.metric == "test_accuracy"
  before = float(task.eval_fn(task.params))
  params, losses = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.adam(1e-2), 100)
  assert losses[-10:].mean() < 0.5 * losses[:10].mean()
  assert float(task.eval_fn(params)) > max(0.8, before)


def test_bad_input():
  with pytest.raises(
    ValueError, match="tasks.make: `name` must be one of 'linreg', 'digits', got name='mnist'"
  ):
    tasks.make("mnist")
  with pytest.raises(ValueError, match="num_steps=-1"):
    tasks.fit(tasks.linreg_loss, tasks.linreg_init(), tasks.make("linreg").batches, optimizers.sgd(0.1), -1)
  with pytest.raises(ValueError, match="linreg_data: `n` must be >= 2, got n=1"):
    tasks.linreg_data(n=1)
  for bad in (0, 1348, 2.5):
    with pytest.raises(ValueError, match=f"tasks.make: `batch_size` .*batch_size={bad}"):
      tasks.make("digits", batch_size=bad)
  with pytest.raises(ValueError, match="tasks.make: `seed` must be >= 0, got seed=-1"):
    tasks.make("linreg", seed=-1)
  x = np.zeros((3, 2), np.float32)
  with pytest.raises(ValueError, match="fit: `batches` .*leading axes \\[3, 4\\]"):
    tasks.fit(
      tasks.linreg_loss, tasks.linreg_init(), (x, np.zeros((4, 2), np.float32)), optimizers.sgd(0.1), 2
    )


def test_fit_takes_a_list_of_batches():
  task = tasks.make("linreg")
  listed = [(task.batches[0][j], task.batches[1][j]) for j in range(10)]  # what a data loader yields
  a, la = tasks.fit(task.loss_fn, task.params, listed, optimizers.sgd(0.3), 15)
  b, lb = tasks.fit(task.loss_fn, task.params, task.batches, optimizers.sgd(0.3), 15)
  np.testing.assert_array_equal(la, lb)
  np.testing.assert_array_equal(a["m"], b["m"])
  with pytest.raises(ValueError, match="fit: the batches of a list `batches` .*same shapes"):
    tasks.fit(task.loss_fn, task.params, [*listed, (np.zeros(3), np.zeros(3))], optimizers.sgd(0.3), 2)


def test_the_training_step_has_one_home():
  """lr_find, sweep and fit share lr_jax/_loop.py's step body (issue 10, item 18): no copy elsewhere."""
  import ast
  from pathlib import Path

  def calls(name):  # attribute names called in the module's code (docstrings are not calls)
    tree = ast.parse((Path(tasks.__file__).parent / name).read_text())
    return {
      n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }

  for name in ("_finder.py", "_sweep.py", "tasks.py"):
    assert "apply_updates" not in calls(name) and "train_step" in calls(name), name
  assert "apply_updates" in calls("_loop.py")
