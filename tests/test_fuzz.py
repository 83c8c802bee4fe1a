"""Bad input, fuzzed: hypothesis drives every public constructor with right and wrong values.

For each example a random subset of a constructor's parameters is replaced by a random value:
negative, zero, NaN, inf, huge (beyond float32), float where an int is expected, strings, None,
empty and nested lists, dicts, arrays of the wrong shape, booleans, complex numbers. The others keep a
valid value. Then:

* the only exception allowed is ``ValueError`` (or ``TypeError``) whose message starts with the
  function's name and names one of its parameters: never an error from JAX internals;
* if construction succeeds, the object works: a schedule's rates at a spread of steps up to 2**31-1
  are not NaN (and finite when every hyperparameter fits in float32); an optimizer's ``init`` and
  ``update`` run and give no NaN.

Volume (derandomized, so the same examples every run): ``EXAMPLES`` per constructor, for the 18
schedule constructors, the 11 optimizer constructors (5 optimizers, 4 ``scale_by_*``,
``reduce_on_plateau``, ``skip_nonfinite``), ``lr_find`` and ``sweep`` (fewer: each valid call
compiles). ``test_fuzz_volume`` checks and prints the counts.
"""

import collections
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lr_jax
from lr_jax import optimizers, schedules
from tests.helpers import SCHEDULE_CASES

EXAMPLES = 40
TOOL_EXAMPLES = 15
STATS = collections.defaultdict(collections.Counter)  # name -> {"examples", "built", "rejected"}
F32_MAX = float(np.finfo(np.float32).max)
STEPS = np.array([0, 1, 2, 3, 7, 10, 99, 100, 1000, 10**6, 2**24 + 1, 2**31 - 1], np.int32)

NAN, INF = float("nan"), float("inf")
BAD_SCALARS = [
  0,
  -1,
  -0.5,
  0.5,
  1,
  2.5,
  1e-30,
  -1e-30,
  1e30,
  -1e30,
  1e300,
  -1e300,
  2**31 - 1,
  2**31,
  2**63,
  -(2**31),
  NAN,
  INF,
  -INF,
  -0.0,
  np.float32(NAN),
  np.float64(INF),
  np.int64(-3),
  np.float32(0.5),
  np.array(2.0),
]
JUNK = [
  None,
  "",
  "1",
  "nan",
  b"1",
  [],
  {},
  (),
  [[1.0]],
  [1, "a"],
  {"a": 1},
  [None],
  True,
  False,
  1 + 2j,
  np.array([[1.0, 2.0]]),
  np.array("x"),
  np.array([]),
  np.array([1.0, NAN]),
  [NAN],
  [INF],
  [-1.0],
  [1e300],
  [3, 1, 2],
  [2.5, 3.5],
  [[1], [2]],
  object(),
  np.zeros((2, 2, 2)),
]
WRONG = st.one_of(
  st.sampled_from(BAD_SCALARS + JUNK), st.floats(allow_nan=True, allow_infinity=True), st.integers()
)


def _small(v) -> bool:
  try:
    return not np.any(np.abs(np.asarray(v, np.float64)) >= 1e4)
  except (TypeError, ValueError):
    return True


# lr_find / sweep allocate num_steps x num_repeats arrays: huge (valid-looking) counts are left to
# test_tools_reject_step_counts_beyond_int32 below, which never allocates.
TOOL_WRONG = st.one_of(
  st.sampled_from([v for v in BAD_SCALARS + JUNK if _small(v)]),
  st.floats(-1e4, 1e4) | st.sampled_from([NAN, INF, -INF]),
  st.integers(-(10**4), 10**4),
)


def _fits_float32(kwargs, limit=F32_MAX) -> bool:
  """Every numeric leaf of the arguments is at most ``limit`` in magnitude (default: finite in float32)."""
  for v in jax.tree.leaves(kwargs, is_leaf=lambda x: isinstance(x, schedules.Schedule)):
    if isinstance(v, schedules.Schedule):
      if not _fits_float32([getattr(v, f) for f in v.__dataclass_fields__], limit):
        return False
      continue
    try:
      a = np.asarray(v, np.float64)
    except (TypeError, ValueError):
      continue
    if np.any(np.abs(a) > limit):
      return False
  return True


def _check_error(e: Exception, fn: str, params):
  assert isinstance(e, (ValueError, TypeError)), f"{fn}: {type(e).__name__}: {e}"
  msg = str(e)
  assert msg.startswith(f"{fn}:") or msg.startswith(f"{fn}(") or re.match(rf"^\w*{fn}\b", msg), (fn, msg)
  assert any(re.search(rf"\b{re.escape(p)}\b", msg) for p in params), (fn, params, msg)


def _draw_kwargs(data, good: dict, extra_wrong=(), wrong=WRONG, alts=None):
  """``good`` with up to 3 parameters replaced by wrong values; the others good or ``alts`` (valid too)."""
  names = sorted(good)
  n_bad = data.draw(st.sampled_from([0, 1, 1, 2, 3]), label="how many corrupt")  # 1 in 5: all valid
  corrupt = data.draw(st.permutations(names), label="order")[: min(n_bad, len(names))]
  kwargs = dict(good)
  for n in names:  # variety among valid values, so hypothesis does not see one valid example only
    if alts and n in alts and n not in corrupt:
      kwargs[n] = data.draw(st.sampled_from([good[n], alts[n]]), label=f"valid {n}")
  for n in sorted(corrupt):
    kwargs[n] = data.draw(
      st.one_of(wrong, st.sampled_from(list(extra_wrong)) if extra_wrong else wrong), label=n
    )
  return kwargs


# ----------------------------------------------------------------------------------------- schedules

SCHEDULE_NAMES = [n for n in schedules.__all__ if n not in ("Schedule", "from_config")]
WRONG_SCHEDULES = [None, 1.0, "cosine", [], [None], {}, [1.0, 2.0], np.array([1.0])]


def _schedule_good(name):
  ctor, kwargs, _, _ = SCHEDULE_CASES[name]
  sig = inspect.signature(ctor)
  good = {
    k: p.default
    for k, p in sig.parameters.items()
    if p.default is not inspect.Parameter.empty and p.kind != p.VAR_POSITIONAL
  }
  good.update(kwargs)
  return good


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_schedule_constructor(name, data):
  ctor = getattr(schedules, name)
  good = _schedule_good(name)
  kwargs = _draw_kwargs(data, good, extra_wrong=WRONG_SCHEDULES, alts=SCHEDULE_CASES[name][2])
  STATS[name]["examples"] += 1
  try:
    if name in ("multiply", "add"):
      s = (
        ctor(*kwargs.pop("schedules"), **kwargs)
        if isinstance(kwargs["schedules"], (list, tuple))
        else ctor(kwargs["schedules"])
      )
    else:
      s = ctor(**kwargs)
  except Exception as e:  # noqa: BLE001 - the type is what is under test
    STATS[name]["rejected"] += 1
    STATS[name]["failed"] += 1
    _check_error(e, name, list(good))
    STATS[name]["failed"] -= 1
    return
  STATS[name]["built"] += 1
  STATS[name]["failed"] += 1  # undone below if the checks pass
  rates = np.asarray(s(STEPS))
  assert rates.shape == STEPS.shape and rates.dtype == np.float32
  assert not np.any(np.isnan(rates)), (name, kwargs, rates)  # a concrete schedule never silently NaNs
  if _fits_float32(kwargs):
    assert np.all(np.isfinite(rates)), (name, kwargs, rates)
  STATS[name]["failed"] -= 1


# ---------------------------------------------------------------------------------------- optimizers

OPTIMIZER_NAMES = [
  "sgd",
  "adagrad",
  "rmsprop",
  "adam",
  "adamw",
  "scale_by_sgd",
  "scale_by_adagrad",
  "scale_by_rmsprop",
  "scale_by_adam",
  "reduce_on_plateau",
  "skip_nonfinite",
]
PARAMS = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.zeros(())}
GRADS = {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.25)}
GOOD_LR = [
  0.1,
  0,
  3,
  np.float32(0.01),
  schedules.cosine_annealing(0.1, 10),
  optax.linear_schedule(0.1, 0.0, 10),
]
WRONG_LR = [
  None,
  "0.1",
  [],
  [0.1],
  {},
  -0.1,
  NAN,
  INF,
  optax.adam(0.1),
  [0.1, 0.2],
  (0.1,),
  np.array([0.1, 0.2]),
]


OPTIMIZER_ALTS = dict(
  momentum=0.5,
  dampening=0.1,
  weight_decay=0.1,
  b1=0.8,
  b2=0.99,
  eps=1e-6,
  alpha=0.9,
  lr_decay=0.1,
  initial_accumulator_value=0.1,
  factor=0.5,
  patience=3,
  threshold=0.01,
  cooldown=2,
  min_scale=0.01,
  accumulation_steps=2,
  max_consecutive=None,
  amsgrad=True,
  centered=True,
  eps_in_sqrt=True,
  mode="max",
  threshold_mode="abs",
  amsgrad_max="corrected",
  decoupled_weight_decay=True,
  optimizer=optax.adam(0.1),
)


def _is_zero(v) -> bool:
  try:
    return bool(np.all(np.asarray(v, np.float64) == 0))
  except (TypeError, ValueError):
    return False


def _optimizer_good(name):
  ctor = getattr(optimizers, name)
  good = {
    k: p.default
    for k, p in inspect.signature(ctor).parameters.items()
    if p.default is not inspect.Parameter.empty
  }
  if name == "skip_nonfinite":
    good = {"optimizer": optimizers.sgd(0.1, momentum=0.9), "max_consecutive": 3}
  elif "learning_rate" in inspect.signature(ctor).parameters:
    good["learning_rate"] = 0.1
  good.pop("moment_dtype", None)
  return good


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_optimizer_constructor(name, data):
  ctor = getattr(optimizers, name)
  good = _optimizer_good(name)
  if "learning_rate" in good:
    good["learning_rate"] = data.draw(st.sampled_from(GOOD_LR), label="good_lr")
  kwargs = _draw_kwargs(data, good, extra_wrong=WRONG_LR + WRONG_SCHEDULES, alts=OPTIMIZER_ALTS)
  STATS[name]["examples"] += 1
  try:
    tx = ctor(**kwargs)
  except Exception as e:  # noqa: BLE001
    STATS[name]["rejected"] += 1
    STATS[name]["failed"] += 1
    _check_error(e, name, list(good))
    STATS[name]["failed"] -= 1
    return
  STATS[name]["built"] += 1
  STATS[name]["failed"] += 1  # undone below if the checks pass
  state = tx.init(PARAMS)
  extra = {"value": jnp.float32(1.0)} if name == "reduce_on_plateau" else {}
  for _ in range(2):
    updates, state = tx.update(GRADS, state, PARAMS, **extra)
  assert jax.tree.structure(updates) == jax.tree.structure(GRADS)
  leaves = [np.asarray(u) for u in jax.tree.leaves(updates)]
  if _is_zero(kwargs.get("eps")):  # eps=0 is allowed (as in PyTorch) and asks for g / 0 when a root is 0
    STATS[name]["failed"] -= 1
    return
  assert not any(np.any(np.isnan(u)) for u in leaves), (name, kwargs, leaves)
  # a momentum or rate of 1e38 times a gradient of 2 overflows in any implementation: finite updates
  # are required for hyperparameters of sane magnitude only (NaN never)
  if _fits_float32(kwargs, limit=1e6):
    assert all(np.all(np.isfinite(u)) for u in leaves), (name, kwargs, leaves)
  STATS[name]["failed"] -= 1


# --------------------------------------------------------------------------------- lr_find and sweep


def _loss(w, b):
  return jnp.mean((w - b) ** 2)


LR_FIND_GOOD = dict(
  min_lr=1e-4,
  max_lr=1.0,
  num_steps=10,
  mode="exponential",
  smoothing=0.9,
  diverge_threshold=4.0,
  num_repeats=1,
  method="steepest",
  progress=False,
  optimizer=optax.sgd,
)


@settings(max_examples=TOOL_EXAMPLES, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_lr_find_arguments(data):
  kwargs = _draw_kwargs(
    data,
    LR_FIND_GOOD,
    [optax.sgd(0.1), 10, 9, 11.5, "linear", "valley"],
    TOOL_WRONG,
    alts=dict(
      min_lr=1e-3,
      max_lr=3.0,
      smoothing=0.0,
      diverge_threshold=None,
      mode="linear",
      method="valley",
      num_repeats=2,
    ),
  )
  STATS["lr_find"]["examples"] += 1
  try:
    res = lr_jax.lr_find(_loss, jnp.ones(2), jnp.zeros((2, 2)), **kwargs)
  except Exception as e:  # noqa: BLE001
    STATS["lr_find"]["rejected"] += 1
    _check_error(e, "lr_find", list(LR_FIND_GOOD))
    return
  STATS["lr_find"]["built"] += 1
  assert np.all(np.isfinite(res.lrs)) and np.all(np.diff(res.lrs) > 0)


SWEEP_GOOD = dict(grid={"lr": [0.1, 0.2]}, num_steps=3, max_parallel=None, progress=False)
WRONG_GRIDS = [
  {},
  [],
  {"lr": []},
  {"lr": "abc"},
  {"lr": [None]},
  {"lr": ["a"]},
  [{"lr": 1}, {"b": 2}],
  [1, 2],
  {1: [0.1]},
  {"lr": [[0.1]]},
  {"lr": 0.1},
  {"lr": [True]},
  [{}],
  {"lr": [1 + 2j]},
]


@settings(max_examples=TOOL_EXAMPLES, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_sweep_arguments(data):
  kwargs = _draw_kwargs(
    data, SWEEP_GOOD, WRONG_GRIDS, TOOL_WRONG, alts=dict(grid=[{"lr": 0.3}], num_steps=2, max_parallel=1)
  )
  STATS["sweep"]["examples"] += 1
  try:
    res = lr_jax.sweep(
      _loss, jnp.ones(2), jnp.zeros((2, 2)), optimizer=lambda h: optax.sgd(h["lr"]), **kwargs
    )
  except Exception as e:  # noqa: BLE001
    STATS["sweep"]["rejected"] += 1
    _check_error(e, "sweep", list(SWEEP_GOOD) + ["grid"])
    return
  STATS["sweep"]["built"] += 1
  assert res.losses.shape[0] == len(res.configs)


def test_fuzz_volume():
  """Runs last: every constructor was driven EXAMPLES times, and some calls succeeded."""
  expected = {
    **{n: EXAMPLES for n in SCHEDULE_NAMES + OPTIMIZER_NAMES},
    "lr_find": TOOL_EXAMPLES,
    "sweep": TOOL_EXAMPLES,
  }
  ran = {n: c for n, c in STATS.items() if c["examples"]}
  if not ran:
    pytest.skip("run together with the fuzz tests above")
  print("\nfuzz volume (examples / built / rejected / failing):")
  for name, c in sorted(ran.items()):
    print(f"  {name:22s} {c['examples']:3d} {c['built']:3d} {c['rejected']:3d} {c['failed']:3d}")
  for name, c in ran.items():
    if not c["failed"]:  # a failing example stops hypothesis early; that failure is reported above
      assert c["examples"] >= expected[name], (name, c)
      assert c["built"] > 0 and c["rejected"] > 0, (name, c)


# ------------------------------------------- regressions: one deterministic test per fuzz finding


@pytest.mark.parametrize(
  "name, kwargs",
  [
    ("constant", dict(value=2**31)),
    ("cosine_annealing", dict(init_value=1.0, total_steps=2**31)),
    ("inverse_sqrt", dict(peak_value=1.0, warmup_steps=2**31)),
    ("inverse_time_decay", dict(init_value=1.0, decay_rate=2**63)),
  ],
)
def test_python_ints_beyond_int32_are_hyperparameters_like_any_other(name, kwargs):
  """Found by fuzzing: a Python int >= 2**31 passes validation, then ``s(step)`` raised OverflowError
  from ``jnp.asarray`` (int32) inside ``as_float``. It is a number: use it (or reject it by name)."""
  try:
    s = getattr(schedules, name)(**kwargs)
  except ValueError as e:
    _check_error(e, name, list(kwargs))
    return
  rates = np.asarray(s(STEPS))
  assert np.all(np.isfinite(rates)), rates


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_optimizer_python_int_beyond_int32(name):
  """Found by fuzzing: ``eps=2**31`` (or ``momentum=2**31``) raised OverflowError in ``update``."""
  kw = dict(momentum=2**31) if name == "sgd" else dict(eps=2**31)
  try:
    tx = getattr(optimizers, name)(0.1, **kw)
  except ValueError as e:
    _check_error(e, name, list(kw))
    return
  u, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(u))


@pytest.mark.parametrize(
  "name, kwargs",
  [
    ("linear", dict(init_value=-1e300, end_value=1.0, total_steps=50)),
    ("cosine_annealing", dict(init_value=1.0, total_steps=100, end_value=1e300)),
    ("inverse_time_decay", dict(init_value=1.0, decay_rate=1e300)),
    ("step_decay", dict(init_value=1e300, step_size=30, gamma=0.5)),
    ("one_cycle", dict(peak_value=1e300, total_steps=100)),
    ("warmup", dict(schedule=schedules.constant(1.0), warmup_steps=1e300)),
  ],
)
def test_values_beyond_float32_never_give_silent_nan(name, kwargs):
  """Found by fuzzing: finite float64 values that overflow float32 (1e300) pass ``number`` and the
  rates come out NaN (inf - inf, inf * 0). Expected: a ValueError naming the parameter (or finite rates)."""
  try:
    s = getattr(schedules, name)(**kwargs)
  except ValueError as e:
    _check_error(e, name, list(kwargs))
    return
  assert not np.any(np.isnan(np.asarray(s(STEPS)))), s(STEPS)


def test_multiply_needs_at_least_one_schedule():
  """Found by fuzzing: ``multiply()`` built a schedule whose call raised JAX's concatenate TypeError."""
  with pytest.raises(ValueError, match="multiply: `schedules`"):
    schedules.multiply()(STEPS)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_learning_rate_that_is_neither_number_nor_callable_is_rejected(name):
  """Found by fuzzing: a list/tuple/dict/GradientTransformation learning rate passed construction and
  failed in ``update`` with "unsupported operand type(s) for *" (or a TypeError from Optax)."""
  for lr in ([], [0.1], (0.1,), {"a": 1}, optax.adam(0.1)):
    with pytest.raises(ValueError, match=rf"{name}: `learning_rate`"):
      tx = getattr(optimizers, name)(lr)
      tx.update(GRADS, tx.init(PARAMS), PARAMS)


def test_multistep_growth_never_overflows_to_inf():
  """Found by fuzzing: ``multistep_decay(1.0, [30, 80], gamma=1e30)`` gives inf from step 80 on
  (gamma**2 overflows float32); DESIGN: rates are finite for every step."""
  try:
    s = schedules.multistep_decay(1.0, [30, 80], gamma=1e30)
  except ValueError as e:
    _check_error(e, "multistep_decay", ["gamma", "milestones"])
    return
  assert np.all(np.isfinite(np.asarray(s(STEPS))))


def test_cosine_warm_restarts_tiny_period_stays_finite():
  """Found by fuzzing: ``cosine_warm_restarts(1.0, period=1e-30, period_mult=2)`` is NaN at step 2**31-1."""
  try:  # a period below one step is now rejected by name (PyTorch requires a whole T_0 >= 1)
    s = schedules.cosine_warm_restarts(1.0, 1e-30, 2, 0.01)
  except ValueError as e:
    _check_error(e, "cosine_warm_restarts", ["period"])
    return
  assert np.all(np.isfinite(np.asarray(s(STEPS))))


@pytest.mark.parametrize("num_steps", [1e30, 2**40])
def test_tools_reject_step_counts_beyond_int32(num_steps):
  """Found by fuzzing: ``num_steps`` >= 2**31 gave OverflowError from JAX (and 2**31 exactly tried
  to allocate 8 GiB in lr_find). Step counters are int32: a count beyond it must be a ValueError."""
  loss = lambda w, b: jnp.mean((w - b) ** 2)
  with pytest.raises(ValueError, match="lr_find: `num_steps`"):
    lr_jax.lr_find(loss, jnp.ones(2), jnp.zeros((2, 2)), num_steps=num_steps, optimizer=optax.sgd)
  with pytest.raises(ValueError, match="sweep: `num_steps`"):
    lr_jax.sweep(
      loss,
      jnp.ones(2),
      jnp.zeros((2, 2)),
      num_steps=num_steps,
      optimizer=lambda h: optax.sgd(h["lr"]),
      grid={"lr": [0.1]},
    )
