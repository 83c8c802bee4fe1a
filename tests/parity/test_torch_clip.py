"""``clip_grad_norm`` / ``clip_grad_value`` against ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``.

Float64 (``jax.enable_x64``) to 1e-12 relative: gradient trees of several leaves and shapes, norms 1, 2,
3, 0.5 and inf, clipping active and inactive; non-finite gradients as PyTorch treats them.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers

torch = pytest.importorskip("torch")

SHAPES = {"w": (3, 4), "b": (4,), "s": (), "e": (0,)}


def _grads(seed, scale, empty=True):
  """A gradient tree; ``empty=False`` leaves out the empty leaf (PyTorch's inf-norm refuses one)."""
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s) * scale for k, s in SHAPES.items() if empty or k != "e"}


def _torch_clip(grads, fn, *args, **kw):
  params = {k: torch.zeros(np.shape(g), dtype=torch.float64, requires_grad=True) for k, g in grads.items()}
  for k, p in params.items():
    p.grad = torch.tensor(grads[k], dtype=torch.float64)
  out = fn(list(params.values()), *args, **kw)
  return {k: p.grad.numpy() for k, p in params.items()}, out


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm, scale", [(1.0, 1.0), (0.05, 1.0), (10.0, 0.01), (1.0, 1e-8)])
def test_clip_grad_norm_equals_torch_float64(norm_type, max_norm, scale):
  with jax.enable_x64(True):
    for seed in range(3):
      grads = _grads(seed, scale, empty=norm_type not in (math.inf, "inf"))
      want, want_norm = _torch_clip(grads, torch.nn.utils.clip_grad_norm_, max_norm, norm_type=norm_type)
      tx = optimizers.clip_grad_norm(max_norm, norm_type=norm_type)
      g = jax.tree.map(jnp.asarray, grads)
      got, state = jax.jit(tx.update)(g, tx.init(g))
      assert state.total_norm.dtype == jnp.float64
      np.testing.assert_allclose(float(state.total_norm), float(want_norm), rtol=1e-12)
      for k in grads:
        assert got[k].dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-12, atol=0)


def test_optax_clip_by_global_norm_differs_from_torch():
  """Why the function exists: Optax omits the ``+ 1e-6`` (the test above would fail with it)."""
  with jax.enable_x64(True):
    grads = _grads(0, 1e-3)
    want, _ = _torch_clip(grads, torch.nn.utils.clip_grad_norm_, 1e-3)
    g = jax.tree.map(jnp.asarray, grads)
    optax_out, _ = optax.clip_by_global_norm(1e-3).update(g, optax.EmptyState())
    ours, _ = optimizers.clip_grad_norm(1e-3).update(g, optimizers.clip_grad_norm(1e-3).init(g))
    diff = np.max(np.abs(np.asarray(optax_out["w"]) - want["w"]) / np.abs(want["w"]))
    assert diff > 1e-4
    np.testing.assert_allclose(np.asarray(ours["w"]), want["w"], rtol=1e-12)


def test_clip_grad_norm_float32_matches_torch_float32():
  grads = _grads(1, 3.0)
  params = {k: torch.zeros(np.shape(g), requires_grad=True) for k, g in grads.items()}
  for k, p in params.items():
    p.grad = torch.tensor(grads[k], dtype=torch.float32)
  torch.nn.utils.clip_grad_norm_(list(params.values()), 0.5)
  g = {k: jnp.asarray(v, jnp.float32) for k, v in grads.items()}
  tx = optimizers.clip_grad_norm(0.5)
  got, state = tx.update(g, tx.init(g))
  assert state.total_norm.dtype == jnp.float32
  for k, p in params.items():
    np.testing.assert_allclose(np.asarray(got[k]), p.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 5.0])
def test_clip_grad_value_equals_torch_float64(clip_value):
  with jax.enable_x64(True):
    grads = _grads(2, 1.0)
    want, _ = _torch_clip(grads, torch.nn.utils.clip_grad_value_, clip_value)
    tx = optimizers.clip_grad_value(clip_value)
    g = jax.tree.map(jnp.asarray, grads)
    got, _ = jax.jit(tx.update)(g, tx.init(g))
    for k in SHAPES:
      np.testing.assert_array_equal(np.asarray(got[k]), want[k])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_gradients_as_torch_without_error(bad):
  with jax.enable_x64(True):
    grads = _grads(3, 1.0)
    grads["w"][0, 0] = bad
    want, want_norm = _torch_clip(grads, torch.nn.utils.clip_grad_norm_, 1.0)
    tx = optimizers.clip_grad_norm(1.0)
    g = jax.tree.map(jnp.asarray, grads)
    got, state = jax.jit(tx.update)(g, tx.init(g))
    np.testing.assert_array_equal(float(state.total_norm), float(want_norm))
    for k in SHAPES:
      np.testing.assert_array_equal(np.asarray(got[k]), want[k])


def test_error_if_nonfinite_raises_eagerly_and_gives_nan_under_jit():
  grads = {"w": jnp.array([1.0, jnp.inf])}
  tx = optimizers.clip_grad_norm(1.0, error_if_nonfinite=True)
  with pytest.raises(RuntimeError, match="clip_grad_norm: the total norm of order 2.0 .* non-finite"):
    tx.update(grads, tx.init(grads))
  p = torch.zeros(2, requires_grad=True)
  p.grad = torch.tensor([1.0, math.inf])
  with pytest.raises(RuntimeError, match="non-finite"):
    torch.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
  got, _ = jax.jit(tx.update)(grads, tx.init(grads))
  assert np.all(np.isnan(np.asarray(got["w"])))
  fine = {"w": jnp.array([3.0, 4.0])}
  got, _state = jax.jit(tx.update)(fine, tx.init(fine))
  np.testing.assert_allclose(np.asarray(got["w"]), [3.0 / (5 + 1e-6), 4.0 / (5 + 1e-6)], rtol=1e-6)


def test_traced_max_norm_and_vmap():
  g = {"w": jnp.array([3.0, 4.0])}

  def clipped(m):
    tx = optimizers.clip_grad_norm(m)
    return tx.update(g, tx.init(g))[0]["w"]

  out = jax.jit(jax.vmap(clipped))(jnp.array([1.0, 10.0, -1.0]))
  np.testing.assert_allclose(np.asarray(out[0]), np.array([3.0, 4.0]) / (5 + 1e-6), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(out[1]), [3.0, 4.0])
  assert np.all(np.isnan(np.asarray(out[2])))  # an invalid traced max_norm: a NaN lane


@pytest.mark.parametrize(
  "call, match",
  [
    (lambda: optimizers.clip_grad_norm(-1.0), r"clip_grad_norm: `max_norm` must be >= 0, got max_norm=-1.0"),
    (lambda: optimizers.clip_grad_norm("a"), r"clip_grad_norm: `max_norm` must be a number"),
    (
      lambda: optimizers.clip_grad_norm(1.0, norm_type=0),
      r"clip_grad_norm: `norm_type` must be .*norm_type=0",
    ),
    (lambda: optimizers.clip_grad_norm(1.0, norm_type="two"), r"`norm_type` must be"),
    (
      lambda: optimizers.clip_grad_norm(1.0, error_if_nonfinite="yes"),
      r"`error_if_nonfinite` must be True or False",
    ),
    (
      lambda: optimizers.clip_grad_value(-0.5),
      r"clip_grad_value: `clip_value` must be >= 0, got clip_value=-0.5",
    ),
  ],
)
def test_bad_hyperparameters_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()
