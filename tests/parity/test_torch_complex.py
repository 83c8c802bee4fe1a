"""Complex parameters: parity with torch.optim on complex64 (PyTorch views a complex tensor as real
pairs, ``torch.view_as_real``), and Optax's complex parabola (``alias_test.test_optimization``).

Tolerance: as in test_torch_optimizers.py (float32 components: ``rtol=1e-5``, ``atol=1e-6``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S
from tests.parity.test_torch_optimizers import CASES, TORCH, _torch_kwargs

torch = pytest.importorskip("torch")

K = 20
SHAPES = {"w": (3, 2), "b": (2,), "s": ()}


def _complex(rng, shape):
  return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


_rng = np.random.default_rng(1)
PARAMS = {n: _complex(_rng, s) for n, s in SHAPES.items()}
GRADS = {n: _complex(_rng, (K, *s)) for n, s in SHAPES.items()}


def _run_jax(tx):
  params = jax.tree.map(jnp.asarray, PARAMS)
  state = tx.init(params)
  for k in range(K):
    u, state = tx.update(jax.tree.map(lambda g, k=k: jnp.asarray(g[k]), GRADS), state, params)
    params = optax.apply_updates(params, u)
  return [np.asarray(x) for x in jax.tree.leaves(params)], state


def _run_torch(cls, kwargs, scheduler=None):
  ps = [torch.tensor(p, requires_grad=True) for p in jax.tree.leaves(PARAMS)]
  opt = cls(ps, **kwargs)
  sched = scheduler(opt) if scheduler else None
  for k in range(K):
    for p, g in zip(ps, jax.tree.leaves(GRADS)):
      p.grad = torch.tensor(g[k])
    opt.step()
    if sched is not None:
      sched.step()
  return [p.detach().numpy() for p in ps]


def _assert_close(ours, theirs):
  for a, b in zip(ours, theirs, strict=True):
    assert a.dtype == np.complex64
    np.testing.assert_allclose(a.real, b.real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.imag, b.imag, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_complex64_matches_torch(name, kwargs):
  ours, state = _run_jax(getattr(O, name)(**kwargs))
  _assert_close(ours, _run_torch(TORCH[name](), _torch_kwargs(kwargs)))
  # The moments are complex too: one real moment per component, like torch's state.
  assert all(x.dtype == jnp.complex64 for x in jax.tree.leaves(state[0]) if x.ndim or x.dtype != jnp.int32)


def test_complex64_with_a_schedule_matches_torch_scheduler():
  lr = S.cosine_annealing(0.01, total_steps=K, end_value=0.001)
  ours, _ = _run_jax(O.adamw(lr, amsgrad=True, weight_decay=0.1))
  theirs = _run_torch(
    torch.optim.AdamW,
    dict(lr=0.01, amsgrad=True, weight_decay=0.1),
    scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=K, eta_min=0.001),
  )
  _assert_close(ours, theirs)


def test_complex_second_moment_is_per_component_not_abs_squared():
  """adam's nu after one update of g = 3 + 4j is (1 - b2) * (9 + 16j), not (1 - b2) * 25."""
  tx = O.scale_by_adam(b2=0.5)
  _, state = tx.update(jnp.asarray([3 + 4j], jnp.complex64), tx.init(jnp.zeros(1, jnp.complex64)))
  np.testing.assert_allclose(np.asarray(state.nu), [4.5 + 8j])


# Optax's alias_test.test_optimization, complex parabola: minimise |p - (1+1j) * [1, -1, 1]|^2 from
# [-1, 10, 1], 10000 jitted steps with the conjugated gradient, then compare with rtol=atol=3e-2.
PARABOLA = {
  "adagrad": lambda: O.adagrad(1.0),
  "adam": lambda: O.adam(0.1),
  "adamw": lambda: O.adamw(0.1),
  "amsgrad": lambda: O.adam(0.1, amsgrad=True),
  "rmsprop": lambda: O.rmsprop(0.01, momentum=0.9, centered=True),
  "sgd": lambda: O.sgd(0.001, momentum=0.9),
}


@pytest.mark.parametrize("name", list(PARABOLA))
def test_complex_parabola_reaches_the_optimum(name):
  tx = PARABOLA[name]()
  final = jnp.asarray([1.0, -1.0, 1.0], jnp.complex64) * (1 + 1j)
  objective = lambda p: jnp.sum(jnp.real(p - final) ** 2 + jnp.imag(p - final) ** 2)

  @jax.jit
  def run(params):
    def body(carry, _):
      p, s = carry
      g = jnp.conj(jax.grad(objective)(p))  # JAX's gradient of a real function of z is conjugated
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    return jax.lax.scan(body, (params, tx.init(params)), None, length=10_000)[0][0]

  params = run(jnp.asarray([-1.0, 10.0, 1.0], jnp.complex64))
  np.testing.assert_allclose(np.asarray(params), np.asarray(final), rtol=3e-2, atol=3e-2)
