"""``reduce_on_plateau`` against ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

The multiplier ``state.scale`` must equal PyTorch's ``lr / base_lr`` (SGD with lr=1.0, ``min_lr=min_scale``,
``eps=0``) after every value. Where PyTorch is wrong on purpose-not-reproduced (negative values with a
relative threshold, -inf), the comparison is against ``_reference_scales``, a plain-Python float64
implementation of the corrected rule written independently of lr_jax (and itself checked against PyTorch
where PyTorch is right).

Hypothesis draws values and thresholds on a dyadic grid (multiples of 1/8, thresholds in {0, 1/16, ...}),
so every comparison ``v < best * (1 - thr)`` is exact in float32 and float64 alike: a tie is a tie in both
and the decisions must agree exactly. Scales are compared with rtol=1e-5: PyTorch multiplies in float64,
lr_jax in float32 (a few ulp after several reductions by a non-dyadic factor).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax.optimizers import reduce_on_plateau
from tests.helpers import plateau_scan_scales

torch = pytest.importorskip("torch")

RTOL = 1e-5  # float32 scale vs PyTorch's float64 lr (a few ulp after repeated non-dyadic factors)
ATOL = 1e-30  # a float32 scale underflows to 0 after ~38 reductions by 0.1, where float64 still holds 1e-40
PAD = 48  # sequences are padded to this length so one compiled scan serves every test
# reduce_on_plateau's defaults (PyTorch's, plus accumulation_steps), passed explicitly so that all are traced
_DEFAULTS = {
  "factor": 0.1,
  "patience": 10,
  "threshold": 1e-4,
  "cooldown": 0,
  "min_scale": 0.0,
  "accumulation_steps": 1,
}


def torch_scales(
  values,
  *,
  factor=0.1,
  patience=10,
  threshold=1e-4,
  threshold_mode="rel",
  cooldown=0,
  min_scale=0.0,
  mode="min",
):
  """PyTorch's lr / base_lr after each ``scheduler.step(v)`` (base lr 1.0, eps=0)."""
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=1.0)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
    opt,
    mode=mode,
    factor=factor,
    patience=patience,
    threshold=threshold,
    threshold_mode=threshold_mode,
    cooldown=cooldown,
    min_lr=min_scale,
    eps=0.0,
  )
  out = []
  for v in values:
    sched.step(v)
    out.append(sched.get_last_lr()[0])
  return np.array(out)


def _reference_scales(
  values,
  *,
  factor=0.1,
  patience=10,
  threshold=1e-4,
  threshold_mode="rel",
  cooldown=0,
  min_scale=0.0,
  mode="min",
  accumulation_steps=1,
):
  """The corrected rule in plain float64 Python: one scale per value."""
  sign = 1.0 if mode == "min" else -1.0  # compare sign * v, lower is better
  best = None
  bad = 0
  cool = 0
  scale = 1.0
  pending = []
  out = []
  for v in values:
    pending.append(v)
    if len(pending) == accumulation_steps:
      m = sum(pending) / len(pending)
      pending = []
      if math.isfinite(m):
        gap = abs(best) * threshold if (best is not None and threshold_mode == "rel") else threshold
        if best is None or sign * m < sign * best - gap:
          best, bad = m, 0
        else:
          bad += 1
      else:
        bad += 1
      if cool > 0:
        cool -= 1
        bad = 0
      if bad > patience:
        scale = min(scale, max(scale * factor, min_scale))
        cool = cooldown
        bad = 0
    out.append(scale)
  return np.array(out)


def jax_scales(values, *, mode="min", threshold_mode="rel", **hyper):
  """lr_jax's scale after each value (every hyperparameter traced: one compile per mode pair)."""
  n = len(values)
  assert n <= PAD
  padded = np.full(PAD, np.nan, np.float32)
  padded[:n] = values
  hyper = {k: np.float32(v) for k, v in {**_DEFAULTS, **hyper}.items()}
  return np.asarray(plateau_scan_scales(padded, **hyper, mode=mode, threshold_mode=threshold_mode))[:n]


def assert_scales(actual, expected):
  np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# Hand-written sequences: (values, hyperparameters).
CASES = {
  "plateau": (
    [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.71, 0.69, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7],
    {"factor": 0.5, "patience": 2},
  ),
  "default_hyperparameters": ([5.0 - 0.1 * min(i, 20) for i in range(45)], {}),
  "below_threshold": (
    [1.0, 0.95, 0.92, 0.91, 0.89, 0.88, 0.85, 0.8, 0.79, 0.78, 0.7],
    {"factor": 0.5, "patience": 1, "threshold": 0.1},
  ),
  "below_default_threshold": (
    [1.0, 0.99995, 0.99992, 0.99985, 0.9998, 0.99979, 0.9997, 0.99968],
    {"factor": 0.5, "patience": 1},
  ),
  "patience_0": ([1.0, 1.0, 0.5, 0.6, 0.4, 0.4, 0.3, 0.3, 0.3], {"factor": 0.5, "patience": 0}),
  "cooldown": ([1.0] * 20, {"factor": 0.5, "patience": 1, "cooldown": 2}),
  "cooldown_with_improvements": (
    [3.0, 3.0, 3.0, 2.0, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5],
    {"factor": 0.5, "patience": 1, "cooldown": 3},
  ),
  "min_scale": ([1.0] * 16, {"factor": 0.1, "patience": 1, "min_scale": 0.05}),
  "min_scale_above_one": ([1.0] * 8, {"factor": 0.5, "patience": 0, "min_scale": 2.0}),
  "max_mode": (
    [0.1, 0.3, 0.5, 0.5, 0.49, 0.6, 0.6, 0.6, 0.6, 0.6, 0.61, 0.6],
    {"factor": 0.2, "patience": 2, "mode": "max"},
  ),
  "max_mode_threshold": (
    [0.5, 0.52, 0.54, 0.56, 0.6, 0.61, 0.62, 0.7],
    {"factor": 0.5, "patience": 0, "threshold": 0.1, "mode": "max"},
  ),
  "abs_mode": (
    [2.0, 1.96, 1.9, 1.88, 1.86, 1.84, 1.7, 1.69, 1.68, 1.67, 1.66],
    {"factor": 0.5, "patience": 1, "threshold": 0.05, "threshold_mode": "abs"},
  ),
  "abs_max_mode": (
    [1.0, 1.2, 1.25, 1.3, 1.31, 1.32, 1.6, 1.6, 1.6, 1.6],
    {"factor": 0.3, "patience": 1, "threshold": 0.1, "threshold_mode": "abs", "mode": "max"},
  ),
  "nan_and_inf_are_bad": (
    [
      1.0,
      float("nan"),
      float("nan"),
      0.9,
      float("inf"),
      float("nan"),
      0.95,
      0.8,
      float("nan"),
      float("nan"),
      float("nan"),
    ],
    {"factor": 0.5, "patience": 1},
  ),
  "nan_max_mode": (
    [1.0, float("nan"), float("-inf"), float("nan"), 2.0],
    {"factor": 0.5, "patience": 1, "mode": "max"},
  ),
  "nan_first": ([float("nan"), 1.0, 1.0, 1.0, float("nan")], {"factor": 0.5, "patience": 0}),
  "noisy": (
    [2.0 / (1 + 0.1 * i) + 0.05 * math.sin(1.7 * i) for i in range(48)],
    {"factor": 0.7, "patience": 3, "threshold": 0.01, "cooldown": 1, "min_scale": 0.2},
  ),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_torch_on_handwritten_sequences(name):
  values, kw = CASES[name]
  expected = torch_scales(values, **kw)
  assert_scales(jax_scales(values, **kw), expected)
  assert_scales(
    _reference_scales(values, **kw), expected
  )  # the reference agrees with torch where torch is right


def test_the_sequences_exercise_reductions():
  """Guards against vacuous parity: most cases must reduce the rate at least once."""
  reduced = [name for name, (values, kw) in CASES.items() if torch_scales(values, **kw)[-1] < 1.0]
  assert len(reduced) >= len(CASES) - 3, reduced


def test_doc_example_matches_torch():
  values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]
  np.testing.assert_array_equal(torch_scales(values, factor=0.5, patience=1), [1.0, 1.0, 1.0, 0.5, 0.5, 0.25])


_dyadic = st.integers(1, 32).map(lambda k: k / 8)  # positive values, exact in float32


@st.composite
def _hyper(draw, mode=None):
  threshold_mode = draw(st.sampled_from(["rel", "abs"]))
  grid = [0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2] if threshold_mode == "rel" else [0.0, 1 / 8, 1 / 4, 1.0]
  return {
    "factor": draw(st.sampled_from([0.1, 0.25, 0.5, 0.3, 0.9])),
    "patience": draw(st.integers(0, 4)),
    "threshold": draw(st.sampled_from(grid)),
    "threshold_mode": threshold_mode,
    "cooldown": draw(st.integers(0, 3)),
    "min_scale": draw(st.sampled_from([0.0, 0.01, 0.1, 0.3])),
    "mode": mode or draw(st.sampled_from(["min", "max"])),
  }


@given(values=st.lists(_dyadic, min_size=1, max_size=PAD), kw=_hyper())
def test_matches_torch_on_drawn_positive_sequences(values, kw):
  expected = torch_scales(values, **kw)
  assert_scales(jax_scales(values, **kw), expected)


@given(values=st.lists(st.integers(-32, 32).map(lambda k: k / 8), min_size=1, max_size=PAD), kw=_hyper())
def test_matches_reference_on_drawn_signed_sequences(values, kw):
  assert_scales(jax_scales(values, **kw), _reference_scales(values, **kw))


@given(
  start=st.integers(-64, -16),
  moves=st.lists(st.integers(-2, 3), min_size=1, max_size=PAD),
  kw=_hyper(),
  sign=st.sampled_from([1, -1]),
)
def test_matches_reference_on_drawn_negative_drifts(start, moves, kw, sign):
  """Slowly drifting negative losses (min) / negative scores (max): where PyTorch's rel test is wrong."""
  kw = {**kw, "threshold_mode": "rel", "threshold": max(kw["threshold"], 1 / 16)}
  kw["mode"] = "min" if sign == 1 else "max"
  values = list(sign * (start + np.cumsum(moves)) / 16)  # multiples of 1/16: exact in float32
  assert_scales(jax_scales(values, **kw), _reference_scales(values, **kw))


@given(values=st.lists(_dyadic, min_size=1, max_size=PAD), kw=_hyper())
def test_reference_matches_torch_on_positive_sequences(values, kw):
  """The reference used for negative values is PyTorch's rule wherever PyTorch is right."""
  assert_scales(_reference_scales(values, **kw), torch_scales(values, **kw))


def test_negative_losses_do_not_reproduce_torch_bug():
  # A worsening loss -1 -> -0.95 -> -0.9 ... with threshold 0.1: PyTorch's bar best * (1 - thr) lies *above*
  # a negative best, so each worse value counts as an improvement and the rate is never reduced.
  values = [-1.0 + 0.05 * i for i in range(8)]
  kw = {"factor": 0.5, "patience": 1, "threshold": 0.1}
  torch_out = torch_scales(values, **kw)
  ours = jax_scales(values, **kw)
  np.testing.assert_array_equal(torch_out, np.ones(len(values)))  # the PyTorch 2.13 bug, measured
  assert_scales(ours, _reference_scales(values, **kw))
  np.testing.assert_array_equal(ours, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125])  # 2 bad -> halve
  # max mode, a worsening negative score -1 -> -1.05 -> ...: PyTorch's bar best * (1 + thr) lies below best.
  values = [-1.0 - 0.05 * i for i in range(8)]
  kw = {"factor": 0.5, "patience": 1, "threshold": 0.1, "mode": "max"}
  torch_out = torch_scales(values, **kw)
  ours = jax_scales(values, **kw)
  np.testing.assert_array_equal(torch_out, np.ones(len(values)))
  assert_scales(ours, _reference_scales(values, **kw))
  np.testing.assert_array_equal(ours, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125])
  # The same drift with positive values (torch is right there) reduces in both.
  values = [1.0 + 0.05 * i for i in range(8)]
  kw = {"factor": 0.5, "patience": 1, "threshold": 0.1}
  assert_scales(jax_scales(values, **kw), torch_scales(values, **kw))
  assert torch_scales(values, **kw)[-1] == 0.125


def test_float32_underflow_after_many_reductions_is_the_only_gap():
  values = [1.0] * PAD
  kw = {"factor": 0.1, "patience": 0}
  ours, expected = jax_scales(values, **kw), torch_scales(values, **kw)
  big = expected > 1e-30
  assert_scales(ours[big], expected[big])
  assert np.all(np.isfinite(ours)) and ours[-1] < 1e-37 and expected[-1] == pytest.approx(1e-47, rel=1e-6)


def test_negative_inf_is_not_a_new_best():
  values = [1.0, float("-inf"), 0.5, 0.4, 0.3, 0.2, 0.1]
  kw = {"factor": 0.5, "patience": 1}
  ours = jax_scales(values, **kw)
  assert_scales(ours, _reference_scales(values, **kw))
  assert ours[-1] == 1.0  # every finite value after -inf still improves
  assert torch_scales(values, **kw)[-1] < 1.0  # PyTorch took -inf as best and then reduced


@pytest.mark.parametrize("steps", [2, 3, 4])
@given(
  means=st.lists(st.integers(1, 32).map(lambda k: k / 4), min_size=1, max_size=12),
  kw=_hyper(),
  spread=st.lists(st.integers(-3, 3), min_size=4, max_size=4),
)
def test_accumulation_matches_torch_fed_epoch_means(steps, means, kw, spread):
  # Each epoch's values are mean + offsets that sum to 0 (dyadic, so the float32 average is exact).
  offsets = [s / 8 for s in spread[: steps - 1]]
  offsets.append(-sum(offsets))
  values = [m + o for m in means for o in offsets][:PAD]
  epochs = len(values) // steps
  ours = jax_scales(values, accumulation_steps=steps, **kw)
  per_epoch = torch_scales(means[:epochs], **kw)
  expected = np.repeat(np.concatenate([[1.0], per_epoch]), steps)[1 : 1 + len(values)]
  assert_scales(ours, expected)


def test_accumulation_with_nan_makes_that_epoch_bad():
  values = [1.0, 1.0, 0.5, float("nan"), 0.5, 0.5, 0.4, 0.4]
  kw = {"factor": 0.5, "patience": 0}
  expected = np.repeat(np.concatenate([[1.0], torch_scales([1.0, float("nan"), 0.5, 0.4], **kw)]), 2)[1:9]
  assert_scales(jax_scales(values, accumulation_steps=2, **kw), expected)


def test_training_trajectory_matches_torch_sgd_with_plateau():
  """chain(sgd, reduce_on_plateau) with value= the loss vs torch SGD + scheduler.step(loss) before opt.step()."""
  rng = np.random.default_rng(0)
  grads = rng.standard_normal((40, 3)).astype(np.float32)
  losses = [1.0 / (1 + i) if i < 10 else 0.1 + 0.001 * (i % 3) for i in range(40)]
  kw = {"factor": 0.5, "patience": 2, "cooldown": 1, "min_scale": 0.1}

  p = torch.nn.Parameter(torch.ones(3))
  opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
    opt, min_lr=0.1 * kw["min_scale"], eps=0.0, **{k: v for k, v in kw.items() if k != "min_scale"}
  )
  for g, v in zip(grads, losses):
    sched.step(v)
    p.grad = torch.tensor(g)
    opt.step()

  # optax.sgd's trace = torch's momentum buffer (dampening 0, buf = g at step 1)
  tx = optax.chain(optax.sgd(0.1, momentum=0.9), reduce_on_plateau(**kw))
  params = jnp.ones(3)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for g, v in zip(grads, losses):
    updates, state = update(jnp.asarray(g), state, params, value=v)
    params = optax.apply_updates(params, updates)
  assert_scales(float(state[1].scale), sched.get_last_lr()[0] / 0.1)
  assert float(state[1].scale) < 1.0
  np.testing.assert_allclose(np.asarray(params), p.detach().numpy(), rtol=1e-5, atol=1e-6)  # float32 sums


# ------------------------------------------------------------- the epoch loop: plateau_step per epoch

EPOCH_LR, EPOCH_STEPS = 0.1, 4
_X = np.random.default_rng(1).normal(size=(EPOCH_STEPS * 4, 3))
_Y = _X @ np.array([1.0, -2.0, 0.5]) + 0.3


def _epoch_loop_torch(values, **kw):
  """SGD(lr=0.1) on a linear model; ``sched.step(values[e])`` after each epoch; lr and params per update."""
  w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
  opt = torch.optim.SGD([w], lr=EPOCH_LR)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
  lrs, ws = [], []
  for e, v in enumerate(values):
    for i in range(EPOCH_STEPS):
      opt.zero_grad()
      x, y = torch.tensor(_X[4 * i : 4 * i + 4]), torch.tensor(_Y[4 * i : 4 * i + 4])
      ((x @ w - y) ** 2).mean().backward()
      lrs.append(opt.param_groups[0]["lr"])  # the rate this update uses
      opt.step()
      ws.append(w.detach().numpy().copy())
    sched.step(v)
  return np.array(lrs), np.array(ws)


def _epoch_loop_jax(values, **kw):
  from lr_jax import optimizers

  tx = optax.chain(optimizers.sgd(EPOCH_LR), reduce_on_plateau(**kw))
  w = jnp.zeros(3, jnp.float64)
  state = tx.init(w)

  @jax.jit
  def step(w, state, x, y):
    lr = optimizers.current_lr(state)  # the rate this update uses
    g = jax.grad(lambda w: jnp.mean((x @ w - y) ** 2))(w)
    updates, state = tx.update(g, state, w)
    return optax.apply_updates(w, updates), state, lr

  plateau_step = jax.jit(optimizers.plateau_step)
  lrs, ws = [], []
  for v in values:
    for i in range(EPOCH_STEPS):
      w, state, lr = step(w, state, jnp.asarray(_X[4 * i : 4 * i + 4]), jnp.asarray(_Y[4 * i : 4 * i + 4]))
      lrs.append(float(lr))
      ws.append(np.asarray(w))
    state = plateau_step(state, v)  # val = evaluate(); state = plateau_step(state, val)
  return np.array(lrs), np.array(ws)


_LOSSES = [1.0, 0.75, 0.75, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]
_ACCS = [0.25, 0.5, 0.5, 0.5, 0.625, 0.625, 0.625, 0.625, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]


@pytest.mark.parametrize(
  "values, torch_kw, jax_kw",
  [
    (_LOSSES, {"factor": 0.5, "patience": 1}, {"factor": 0.5, "patience": 1}),
    (_ACCS, {"mode": "max", "factor": 0.5, "patience": 1}, {"mode": "max", "factor": 0.5, "patience": 1}),
    (
      _LOSSES,
      {"threshold_mode": "abs", "threshold": 0.3, "factor": 0.5, "patience": 0},
      {"threshold_mode": "abs", "threshold": 0.3, "factor": 0.5, "patience": 0},
    ),
    (
      _ACCS,
      {
        "mode": "max",
        "threshold_mode": "abs",
        "threshold": 0.2,
        "factor": 0.25,
        "patience": 1,
        "cooldown": 2,
      },
      {
        "mode": "max",
        "threshold_mode": "abs",
        "threshold": 0.2,
        "factor": 0.25,
        "patience": 1,
        "cooldown": 2,
      },
    ),
    (
      _LOSSES,
      {"factor": 0.5, "patience": 0, "min_lr": 0.03},
      {"factor": 0.5, "patience": 0, "min_scale": 0.3},
    ),
    # eps: PyTorch skips cuts of eps or less in lr units: 0.1 -> 0.05 -> 0.025 -> 0.0125, then no more
    (_LOSSES, {"factor": 0.5, "patience": 0, "eps": 0.01}, {"factor": 0.5, "patience": 0, "eps": 0.1}),
  ],
  ids=["min-rel", "max-rel", "min-abs", "max-abs-cooldown", "min_lr", "eps"],
)
def test_epoch_loop_with_plateau_step_equals_torch_on_every_update(values, torch_kw, jax_kw):
  with jax.enable_x64(True):
    t_lr, t_w = _epoch_loop_torch(values, **{"eps": 0.0, **torch_kw})
    j_lr, j_w = _epoch_loop_jax(values, **jax_kw)
  cuts = np.flatnonzero(np.diff(t_lr) < 0) + 1
  assert len(cuts) >= 2 and np.all(cuts % EPOCH_STEPS == 0)  # not vacuous; cuts land on epoch starts
  np.testing.assert_allclose(j_lr, t_lr, rtol=1e-7)  # float32 scale, float64 lr
  np.testing.assert_allclose(j_w, t_w, rtol=1e-6, atol=1e-7)  # min_scale=0.3 is rounded to float32
  for c in cuts:  # the update right after a cut uses the new rate
    assert j_lr[c] < j_lr[c - 1]


def test_per_update_form_cuts_one_update_before_the_epoch_loop():
  """What the docstring says of ``accumulation_steps``: the cut lands on the last update of the epoch."""
  values = [1.0, 1.0, 1.0]
  tx = reduce_on_plateau(factor=0.5, patience=0, accumulation_steps=EPOCH_STEPS)
  state = tx.init(jnp.zeros(()))
  scales = []
  for v in values:
    for _ in range(EPOCH_STEPS):
      _, state = tx.update(jnp.ones(()), state, value=v)
      scales.append(float(state.scale))
  assert scales.index(0.5) == 2 * EPOCH_STEPS - 1  # torch: the first update of epoch 3 (index 8)
