"""Built-in training problems shared by the command line, the examples and the tests.

Two tasks, both on data that ships with the installed packages (no download):

* ``linreg``: the tutorial's linear regression, ``y = 3 x + 2 + noise`` with ``x ~ U(0, 1)``,
  parameters ``{"m": slope, "b": intercept}`` starting at 0, loss ``mean((m x + b - y)**2)``.
* ``digits``: a one-hidden-layer MLP (64 -> 32 -> 10, tanh) on scikit-learn's 8x8 handwritten
  digits (1797 images that ship inside scikit-learn), softmax cross-entropy, test accuracy as metric.

A third, ``make_diabetes()``: an MLP (10 -> 32 -> 1) regressing scikit-learn's diabetes progression
(442 patients), MSE loss; it is not one of ``TASKS`` (the command line's choices).

``make(name)`` returns a :class:`Task` (loss, initial parameters, stacked mini-batches, an
evaluation function), which is exactly what ``lr_jax.lr_find`` and ``lr_jax.sweep`` take. ``fit``
trains any of them with an Optax optimizer in one jit-compiled ``lax.scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_jax import _loop
from lr_jax._validation import check, choice, number

__all__ = [
  "TASKS",
  "Task",
  "diabetes_data",
  "digits_data",
  "fit",
  "linreg_data",
  "linreg_init",
  "linreg_loss",
  "make",
  "make_diabetes",
  "mlp_accuracy",
  "mlp_apply",
  "mlp_init",
  "mlp_loss",
  "mlp_mse",
]

TASKS = ("linreg", "digits")


class Task(NamedTuple):
  """A built-in problem: everything ``lr_find``, ``sweep`` and ``fit`` need.

  Attributes:
    name: ``"linreg"`` or ``"digits"``.
    loss_fn: ``loss_fn(params, batch) -> scalar`` training loss.
    params: initial parameters (a pytree of float32 arrays).
    batches: a pytree of arrays whose leading axis indexes mini-batches (cycled by the trainers).
    eval_fn: ``eval_fn(params) -> scalar`` on held-out data (test MSE, or test accuracy).
    metric: name of what ``eval_fn`` returns (``"test_mse"`` or ``"test_accuracy"``).
  """

  name: str
  loss_fn: Callable[[Any, Any], jax.Array]
  params: Any
  batches: Any
  eval_fn: Callable[[Any], jax.Array]
  metric: str


# --------------------------------------------------------------------------------------------------
# Linear regression: y = 3 x + 2 + noise


def linreg_data(n: int = 100, noise: float = 0.1, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
  """The tutorial's synthetic data: ``x ~ U(0, 1)``, ``y = 3 x + 2 + noise * N(0, 1)``.

  Args:
    n: number of points.
    noise: standard deviation of the Gaussian noise.
    seed: NumPy seed (the data are the same on every machine).

  Returns:
    ``(x, y)``, two float32 arrays of shape ``(n,)``.

  Examples:
    >>> x, y = linreg_data(n=4, noise=0.0)
    >>> print(*(f"{v:.2f}" for v in y - 3 * x))
    2.00 2.00 2.00 2.00
  """
  n = int(number(n, fn="linreg_data", name="n", integer=True))
  if n < 2:
    raise ValueError(f"linreg_data: `n` must be >= 2, got n={n}.")
  rng = np.random.default_rng(seed)
  x = rng.uniform(0.0, 1.0, size=n)
  y = 3.0 * x + 2.0 + noise * rng.standard_normal(n)
  return x.astype(np.float32), y.astype(np.float32)


def linreg_init() -> dict[str, jax.Array]:
  """Slope ``m`` and intercept ``b``, both 0 (float32 scalars).

  Examples:
    >>> print(sorted(linreg_init()))
    ['b', 'm']
  """
  return {"m": jnp.zeros((), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def linreg_loss(params, batch) -> jax.Array:
  """Mean squared error ``mean((m x + b - y)**2)`` of the line on ``batch = (x, y)``.

  Examples:
    >>> x, y = jnp.array([0.0, 1.0]), jnp.array([2.0, 5.0])
    >>> print(f"{linreg_loss({'m': jnp.float32(3.0), 'b': jnp.float32(0.0)}, (x, y)):.2f}")
    4.00
  """
  x, y = batch
  return jnp.mean(jnp.square(params["m"] * x + params["b"] - y))


# --------------------------------------------------------------------------------------------------
# Digits MLP


_DIGITS_TRAIN = 1797 - 450  # training images of ``make("digits")``


def digits_data(seed: int = 0, test_size: int = 450) -> dict[str, np.ndarray]:
  """scikit-learn's 8x8 handwritten digits, pixels scaled to [0, 1], split into train and test.

  The data ship inside scikit-learn (``sklearn.datasets.load_digits``), so nothing is downloaded;
  scikit-learn is imported here, lazily, and is part of the ``dev`` extra.

  Args:
    seed: NumPy seed of the train/test permutation.
    test_size: number of held-out images (of 1797).

  Returns:
    ``{"x_train", "y_train", "x_test", "y_test"}``: float32 images of shape ``(n, 64)`` and int32
    labels of shape ``(n,)``.

  Raises:
    ImportError: if scikit-learn is not installed.

  Examples:
    >>> d = digits_data()
    >>> print(d["x_train"].shape, d["x_test"].shape)
    (1347, 64) (450, 64)
  """
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
      "the digits task needs scikit-learn (it ships the images): pip install scikit-learn, "
      "or install lr-jax with the dev extra."
    ) from e
  images, labels = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(labels))
  x = (images[order] / 16.0).astype(np.float32)
  y = labels[order].astype(np.int32)
  return {
    "x_train": x[test_size:],
    "y_train": y[test_size:],
    "x_test": x[:test_size],
    "y_test": y[:test_size],
  }


def mlp_init(key: jax.Array, sizes: tuple[int, ...] = (64, 32, 10)) -> list[dict[str, jax.Array]]:
  """LeCun-normal weights and zero biases for an MLP with layer widths ``sizes``.

  Examples:
    >>> params = mlp_init(jax.random.key(0))
    >>> print([p["w"].shape for p in params])
    [(64, 32), (32, 10)]
  """
  keys = jax.random.split(key, len(sizes) - 1)
  return [
    {
      "w": jax.random.normal(k, (n_in, n_out), jnp.float32) / np.sqrt(n_in),
      "b": jnp.zeros((n_out,), jnp.float32),
    }
    for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
  ]


def mlp_apply(params, x: jax.Array) -> jax.Array:
  """Logits of the MLP: tanh hidden layers, linear output.

  Examples:
    >>> print(mlp_apply(mlp_init(jax.random.key(0)), jnp.zeros((5, 64))).shape)
    (5, 10)
  """
  for layer in params[:-1]:
    x = jnp.tanh(x @ layer["w"] + layer["b"][None, :])
  return x @ params[-1]["w"] + params[-1]["b"][None, :]


def mlp_loss(params, batch) -> jax.Array:
  """Mean softmax cross-entropy of the MLP on ``batch = (x, labels)``.

  Examples:
    >>> zero = [{"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}]
    >>> print(f"{mlp_loss(zero, (jnp.ones((3, 64)), jnp.array([0, 1, 2]))):.4f}")  # log(10)
    2.3026
  """
  x, labels = batch
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(mlp_apply(params, x), labels))


def mlp_accuracy(params, x: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of ``x`` whose arg-max logit is the label.

  Examples:
    >>> eye = [{"w": jnp.eye(64, 10), "b": jnp.zeros(10)}]
    >>> print(f"{mlp_accuracy(eye, jnp.eye(4, 64), jnp.array([0, 1, 2, 0])):.2f}")
    0.75
  """
  return jnp.mean((jnp.argmax(mlp_apply(params, x), axis=-1) == labels).astype(jnp.float32))


# --------------------------------------------------------------------------------------------------
# Tasks and a trainer


def make(name: str, *, seed: int = 0, batch_size: int = 64) -> Task:
  """Builds a built-in task by name.

  ``linreg`` cuts its 100 points, in order, into 10 mini-batches of 10 (one epoch is 10 updates);
  ``digits`` cuts the 1347 training images into ``1347 // batch_size`` shuffled mini-batches. The
  trainers cycle through the batches.

  Args:
    name: ``"linreg"`` or ``"digits"``.
    seed: seed of the data split, the batch order and the MLP's initial weights.
    batch_size: mini-batch size of ``digits`` (``linreg`` always uses 10).

  Returns:
    A :class:`Task`.

  Raises:
    ValueError: for an unknown ``name``, a negative ``seed``, or a ``batch_size`` outside
      [1, 1347] (the number of training images).

  Examples:
    >>> task = make("linreg")
    >>> print(task.metric, [a.shape for a in task.batches])
    test_mse [(10, 10), (10, 10)]
  """
  fn = "tasks.make"
  choice(name, TASKS, fn=fn, name="name")
  seed = int(number(seed, fn=fn, name="seed", integer=True))
  check(seed >= 0, fn=fn, must="`seed` must be >= 0", seed=seed)
  batch_size = int(number(batch_size, fn=fn, name="batch_size", integer=True))
  check(
    1 <= batch_size <= _DIGITS_TRAIN,
    fn=fn,
    must=f"`batch_size` must be in [1, {_DIGITS_TRAIN}] (the training images)",
    batch_size=batch_size,
  )
  if name == "linreg":
    x, y = linreg_data(seed=42 + seed)
    xt, yt = linreg_data(seed=1042 + seed)
    return Task(
      name,
      linreg_loss,
      linreg_init(),
      (jnp.asarray(x).reshape(10, 10), jnp.asarray(y).reshape(10, 10)),
      lambda p: linreg_loss(p, (xt, yt)),
      "test_mse",
    )
  d = digits_data(seed=seed)
  n = len(d["y_train"]) // batch_size
  order = np.random.default_rng(seed + 1).permutation(len(d["y_train"]))[: n * batch_size]
  xb = d["x_train"][order].reshape(n, batch_size, 64)
  yb = d["y_train"][order].reshape(n, batch_size)
  xt, yt = jnp.asarray(d["x_test"]), jnp.asarray(d["y_test"])
  return Task(
    name,
    mlp_loss,
    mlp_init(jax.random.key(seed)),
    (jnp.asarray(xb), jnp.asarray(yb)),
    lambda p: mlp_accuracy(p, xt, yt),
    "test_accuracy",
  )


def fit(
  loss_fn, params, batches, optimizer: optax.GradientTransformation, num_steps: int, *, history: bool = False
):
  """Trains ``params`` for ``num_steps`` Optax updates in one jit-compiled ``lax.scan``.

  Step t uses mini-batch ``t % num_batches``; the loss recorded at step t is the loss of the
  parameters *before* the t-th update, as in a plain Optax loop::

      for t in range(num_steps):
          loss, grads = jax.value_and_grad(loss_fn)(params, batch[t % n])
          updates, state = optimizer.update(grads, state, params)
          params = optax.apply_updates(params, updates)

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``.
    params: initial parameters.
    batches: pytree of arrays whose leading axis indexes mini-batches, or a list of equally shaped
      batches (stacked here).
    optimizer: any ``optax.GradientTransformation`` (``optimizers.sgd(schedule)`` ...).
    num_steps: number of updates (a Python int: it is the scan's length).
    history: if true, return the parameters after every update, stacked along a new leading axis
      of length ``num_steps``, instead of the final parameters only.

  Returns:
    ``(params, losses)`` with ``losses`` of shape ``(num_steps,)``.

  Raises:
    ValueError: a negative or non-integer ``num_steps``, or ``batches`` leaves without a shared
      leading axis.

  Examples:
    >>> from lr_jax import optimizers
    >>> task = make("linreg")
    >>> params, losses = fit(task.loss_fn, task.params, task.batches, optimizers.sgd(0.5), 500)
    >>> print(f"m={params['m']:.1f} b={params['b']:.1f}")
    m=3.0 b=2.0
  """
  num_steps = int(number(num_steps, fn="fit", name="num_steps", integer=True))
  if num_steps < 0:
    raise ValueError(f"fit: `num_steps` must be >= 0, got num_steps={num_steps}.")
  batches, n = _loop.prepare_batches(batches, "fit", stacklevel=3)

  @jax.jit
  def run(params, batches):
    def body(carry, t):
      params, state = carry
      loss, params, state = _loop.train_step(loss_fn, optimizer, params, state, _loop.take(batches, t % n))
      return (params, state), ((params if history else None), loss)

    (params, _), (trail, losses) = jax.lax.scan(body, (params, optimizer.init(params)), jnp.arange(num_steps))
    return (trail if history else params), losses

  return run(params, batches)


# --------------------------------------------------------------------------------------------------
# Diabetes regression MLP (not in ``TASKS``: built by ``make_diabetes``)


_DIABETES_TEST = 100  # held-out patients of ``make_diabetes`` (of 442)


def diabetes_data(seed: int = 0, test_size: int = _DIABETES_TEST) -> dict[str, np.ndarray]:
  """scikit-learn's diabetes regression data, standardised with the training split's statistics.

  442 patients, 10 baseline variables (age, sex, body-mass index, blood pressure, six blood serum
  measurements) and a measure of disease progression one year later (Efron et al. 2004, *Least Angle
  Regression*). The data ship inside scikit-learn (``sklearn.datasets.load_diabetes``): nothing is
  downloaded. Each feature and the target are shifted and scaled to mean 0 and variance 1 on the
  training split, so a test mean squared error of 1 is the constant predictor's and ``1 - R²`` in
  general.

  Args:
    seed: NumPy seed of the train/test permutation.
    test_size: number of held-out patients (of 442).

  Returns:
    ``{"x_train", "y_train", "x_test", "y_test"}``: float32 features of shape ``(n, 10)`` and
    float32 targets of shape ``(n,)``.

  Raises:
    ImportError: if scikit-learn is not installed.
    ValueError: if ``test_size`` is not in [1, 440].

  Examples:
    >>> d = diabetes_data()
    >>> print(d["x_train"].shape, d["x_test"].shape, f"{d['y_train'].std():.3f}")
    (342, 10) (100, 10) 1.000
  """
  test_size = int(number(test_size, fn="diabetes_data", name="test_size", integer=True))
  check(
    1 <= test_size <= 440, fn="diabetes_data", must="`test_size` must be in [1, 440]", test_size=test_size
  )
  try:
    from sklearn.datasets import load_diabetes
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
      "the diabetes task needs scikit-learn (it ships the data): pip install scikit-learn, "
      "or install lr-jax with the dev extra."
    ) from e
  x, y = load_diabetes(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(y))
  x, y = x[order], y[order]
  train = slice(test_size, None)
  mx, sx = x[train].mean(0), x[train].std(0)
  my, sy = y[train].mean(), y[train].std()
  x, y = ((x - mx) / sx).astype(np.float32), ((y - my) / sy).astype(np.float32)
  return {"x_train": x[train], "y_train": y[train], "x_test": x[:test_size], "y_test": y[:test_size]}


def mlp_mse(params, batch) -> jax.Array:
  """Mean squared error of a one-output MLP (``mlp_apply``) on ``batch = (x, targets)``.

  Examples:
    >>> zero = [{"w": jnp.zeros((10, 1)), "b": jnp.ones(1)}]
    >>> print(f"{mlp_mse(zero, (jnp.ones((3, 10)), jnp.array([1.0, 2.0, 3.0]))):.4f}")
    1.6667
  """
  x, targets = batch
  return jnp.mean(jnp.square(mlp_apply(params, x)[:, 0] - targets))


def make_diabetes(*, seed: int = 0, batch_size: int = 32) -> Task:
  """The diabetes regression task: an MLP (10 -> 32 -> 1, tanh) on ``diabetes_data``, MSE loss.

  A small, noisy regression problem (342 training patients; the best held-out MSE is about half the
  target's variance), so the held-out loss rises again when a run overfits or its steps are too
  large: unlike ``digits`` (10-class cross-entropy on 1347 images). The training patients are cut,
  shuffled, into ``342 // batch_size`` mini-batches; ``eval_fn`` is the test MSE.

  Args:
    seed: seed of the data split, the batch order and the MLP's initial weights.
    batch_size: mini-batch size, in [1, 342].

  Returns:
    A :class:`Task` named ``"diabetes"`` with metric ``"test_mse"``.

  Raises:
    ValueError: a negative ``seed`` or a ``batch_size`` outside [1, 342].

  Examples:
    >>> task = make_diabetes()
    >>> print(task.metric, [a.shape for a in task.batches], f"{task.eval_fn(task.params):.2f}")
    test_mse [(10, 32, 10), (10, 32)] 1.04
  """
  fn = "tasks.make_diabetes"
  seed = int(number(seed, fn=fn, name="seed", integer=True))
  check(seed >= 0, fn=fn, must="`seed` must be >= 0", seed=seed)
  batch_size = int(number(batch_size, fn=fn, name="batch_size", integer=True))
  train = 442 - _DIABETES_TEST
  check(
    1 <= batch_size <= train,
    fn=fn,
    must=f"`batch_size` must be in [1, {train}] (the training patients)",
    batch_size=batch_size,
  )
  d = diabetes_data(seed=seed)
  n = train // batch_size
  order = np.random.default_rng(seed + 1).permutation(train)[: n * batch_size]
  xb = d["x_train"][order].reshape(n, batch_size, 10)
  yb = d["y_train"][order].reshape(n, batch_size)
  xt, yt = jnp.asarray(d["x_test"]), jnp.asarray(d["y_test"])
  return Task(
    "diabetes",
    mlp_mse,
    mlp_init(jax.random.key(seed), (10, 32, 1)),
    (jnp.asarray(xb), jnp.asarray(yb)),
    lambda p: mlp_mse(p, (xt, yt)),
    "test_mse",
  )
