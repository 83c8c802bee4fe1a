"""Contract tests run for every public schedule (registry in helpers.SCHEDULE_CASES)."""

import inspect
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import schedules as S
from lr_jax.schedules import Schedule
from tests.helpers import SCHEDULE_CASES, VARIANTS, build

NAMES = sorted(SCHEDULE_CASES)
STEPS = np.array([-3, 0, 1, 2, 5, 9, 10, 11, 29, 30, 31, 49, 50, 51, 99, 100, 101, 150, 1000, 10**6])
BIG = np.array([2**20, 2**24 + 1, 2**30, 2**31 - 1], dtype=np.int64)


def case(name):
  ctor, kwargs, alts, bads = SCHEDULE_CASES[name]
  if ctor is None:
    pytest.fail(f"lr_jax.schedules.{name} is missing")
  return ctor, kwargs, alts, bads


def numeric(kwargs):
  return {
    k: v for k, v in kwargs.items() if not isinstance(v, (str, bool, Schedule, tuple)) and k != "schedules"
  }


def test_every_design_name_is_public():
  assert set(NAMES) <= set(S.__all__)
  for n in S.__all__:
    assert getattr(S, n).__doc__


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_strict_promotion(name):
  ctor, kwargs, _, _ = case(name)
  s = build(ctor, kwargs)
  with jax.numpy_dtype_promotion("strict"):
    scalar = s(7)
    grid = s(jnp.arange(12, dtype=jnp.int32).reshape(3, 4))
    fgrid = s(jnp.arange(12, dtype=jnp.float32).reshape(3, 4))
  assert scalar.shape == () and scalar.dtype == jnp.float32
  assert grid.shape == (3, 4) and grid.dtype == jnp.float32
  np.testing.assert_allclose(grid, fgrid, rtol=1e-6)
  np.testing.assert_allclose(grid.ravel()[7], scalar, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_negative_steps_count_as_zero_and_big_steps_are_finite(name):
  ctor, kwargs, _, _ = case(name)
  s = build(ctor, kwargs)
  # 4 steps, the shape of BIG: one compile of the eager program for both
  np.testing.assert_array_equal(s(jnp.array([-5, -1, 0, -(2**31)])), s(0) * jnp.ones(4))
  assert np.all(np.isfinite(s(BIG.astype(np.int32))))
  assert np.all(np.isfinite(s(2**31 - 1)))
  assert np.all(np.isfinite(s(STEPS)))


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_built_under_variant_matches_eager(name, variant):
  ctor, kwargs, _, _ = case(name)
  nums = numeric(kwargs)
  rest = {k: v for k, v in kwargs.items() if k not in nums}

  def rates(nums, steps):
    return build(ctor, {**rest, **nums})(steps)

  expected = build(ctor, kwargs)(STEPS)
  got = variant(rates)({k: jnp.asarray(v) for k, v in nums.items()}, STEPS)
  np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_each_hyperparameter_matches_loop(name):
  ctor, kwargs, alts, _ = case(name)
  for param, alt in alts.items():
    values = jnp.stack([jnp.asarray(kwargs[param]), jnp.asarray(alt)])
    got = jax.jit(jax.vmap(lambda v, param=param: build(ctor, {**kwargs, param: v})(STEPS)))(values)
    want = np.stack([build(ctor, kwargs)(STEPS), build(ctor, {**kwargs, param: alt})(STEPS)])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7, err_msg=f"{name}: vmap over {param}")


@pytest.mark.parametrize("name", NAMES)
def test_schedule_is_a_jit_argument_without_recompiling(name):
  ctor, kwargs, alts, _ = case(name)
  f = jax.jit(lambda s, t: s(t))
  a = build(ctor, kwargs)
  b = build(ctor, {**kwargs, **alts})
  np.testing.assert_allclose(f(a, STEPS), a(STEPS), rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(f(b, STEPS), b(STEPS), rtol=2e-6, atol=1e-7)
  assert f._cache_size() == 1
  batch = jax.tree.map(lambda x, y: jnp.stack([jnp.asarray(x), jnp.asarray(y)]), a, b)
  np.testing.assert_allclose(
    jax.jit(jax.vmap(lambda s: s(STEPS)))(batch), np.stack([a(STEPS), b(STEPS)]), rtol=2e-6, atol=1e-7
  )


def _stack(a, b, dtype=None):
  """Two schedules of one structure as one batch; floating leaves as ``dtype`` when given."""

  def one(x, y):
    x, y = jnp.asarray(x), jnp.asarray(y)
    if dtype is not None and jnp.issubdtype(x.dtype, jnp.floating):
      x, y = x.astype(dtype), y.astype(dtype)
    return jnp.stack([x, y])

  return jax.tree.map(one, a, b)


@pytest.mark.parametrize("name", NAMES)
def test_x64_python_floats_give_float64_with_one_compile_and_vmap(name):
  # JAX's convention: with x64, Python floats take the default float dtype (float64) and float32
  # arrays keep float32; a new peak value still hits the compile cache, and batches still vmap.
  ctor, kwargs, alts, _ = case(name)
  with jax.enable_x64(True):
    f = jax.jit(lambda s, t: s(t))
    a = build(ctor, kwargs)
    b = build(ctor, {**kwargs, **alts})
    ra, rb = f(a, STEPS), f(b, STEPS)
    assert ra.dtype == rb.dtype == a(STEPS).dtype == a.dtype == jnp.float64
    assert f._cache_size() == 1
    np.testing.assert_allclose(rb, b(STEPS), rtol=1e-12, atol=1e-300)
    batched = jax.jit(jax.vmap(lambda s: s(STEPS)))  # jit: one compile, not op-by-op dispatch
    out = batched(_stack(a, b))
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(out, np.stack([ra, rb]), rtol=1e-12, atol=1e-300)
    out32 = batched(_stack(a, b, jnp.float32))
    assert out32.dtype == jnp.float32
    np.testing.assert_allclose(out32, out, rtol=2e-5, atol=1e-7)
  # x64 off again: float32 (the program's dtype, traced, not compiled; the eager call is cached)
  assert jax.eval_shape(f, a, STEPS).dtype == jnp.float32 and a(STEPS).dtype == a.dtype == jnp.float32


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_through_json_and_repr_shows_values(name):
  ctor, kwargs, _, _ = case(name)
  s = build(ctor, kwargs)
  cfg = json.loads(json.dumps(s.to_config()))
  assert cfg["name"] == name
  r = S.from_config(cfg)
  assert type(r) is type(s)
  np.testing.assert_array_equal(r(STEPS), s(STEPS))
  assert repr(s).startswith(name + "(")
  for k in numeric(kwargs):
    assert f"{k}=" in repr(s)


@pytest.mark.parametrize("name", NAMES)
def test_invalid_values_raise_eagerly_and_poison_traced_lanes(name):
  ctor, kwargs, _, bads = case(name)
  for param, bad in bads.items():
    with pytest.raises(ValueError, match=rf"{name}.*{param}"):
      build(ctor, {**kwargs, param: bad})
    values = jnp.stack([jnp.asarray(kwargs[param], jnp.float32), jnp.asarray(bad, jnp.float32)])
    out = jax.jit(jax.vmap(lambda v, param=param: build(ctor, {**kwargs, param: v})(STEPS)))(values)
    assert np.all(np.isfinite(out[0])), (param, out[0])
    assert np.all(np.isnan(out[1])), (name, param, out[1])


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_wrong_types_raise_value_error(name):
  ctor, kwargs, _, _ = case(name)
  defaults = inspect.signature(ctor).parameters
  for param in numeric(kwargs):
    for bad in (float("nan"), float("inf"), "0.1", None):
      if bad is None and defaults[param].default is None:
        continue  # None is the documented default (e.g. cyclic's step_size_down)
      with pytest.raises(ValueError, match=rf"{name}.*{param}"):
        build(ctor, {**kwargs, param: bad})


@pytest.mark.parametrize("name", NAMES)
def test_gradient_wrt_first_hyperparameter_is_finite(name):
  ctor, kwargs, _, _ = case(name)
  floats = {k: v for k, v in numeric(kwargs).items() if isinstance(v, float)}
  if not floats:
    pytest.skip("no float hyperparameter at the top level")
  k = next(iter(floats))
  g = jax.jit(jax.grad(lambda v: build(ctor, {**kwargs, k: v})(jnp.array([0, 5, 50, 200])).sum()))(floats[k])
  assert np.isfinite(g)


@pytest.mark.parametrize("name", ["one_cycle", "cosine_annealing", "warmup", "cyclic"])
def test_works_as_optax_learning_rate_and_in_inject_hyperparams(name):
  ctor, kwargs, _, _ = case(name)
  s = build(ctor, kwargs)
  params = jnp.array([1.0, -2.0])
  grads = jnp.array([0.5, 0.25])
  opt = optax.sgd(s)
  state = opt.init(params)
  p = params
  for k in range(5):
    u, state = opt.update(grads, state, p)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(
      p, params - grads * np.sum([float(s(j)) for j in range(k + 1)]), rtol=1e-5, atol=1e-6
    )
  inj = optax.inject_hyperparams(optax.adam)(learning_rate=s)
  st = inj.init(params)
  _, st = inj.update(grads, st, params)
  chex.assert_trees_all_close(st.hyperparams["learning_rate"], s(0), rtol=1e-6)


def test_schedule_classes_with_the_same_shape_have_different_treedefs():
  # jax 0.10's register_dataclass compares such nodes equal (a wrong jit-cache hit on a hash
  # collision ran exponential_decay's program for inverse_time_decay); _base registers its own.
  a = S.exponential_decay(0.8, 0.4, 9, staircase=True)
  b = S.inverse_time_decay(0.8, 0.4, 9, staircase=True)
  assert jax.tree.structure(a) != jax.tree.structure(b)
  f = jax.jit(lambda s, t: s(t))
  np.testing.assert_allclose([f(a, 20), f(b, 20)], [a(20), b(20)], rtol=1e-6)
