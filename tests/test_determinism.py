"""Determinism: the same computation gives the same bits; jit/eager and vmap/loop agree.

* Bitwise: a jitted training run, ``lr_find`` and ``sweep`` repeated in one process (the same
  compiled program on the same inputs).
* Within ``RTOL`` (stated, not bitwise): jit vs eager and vmap vs a Python loop. Eager runs one XLA
  op at a time; jit fuses them, and vmap vectorizes the loop body, and XLA:CPU may then contract or
  reorder float32 operations (a few ulp). Observed gaps are recorded next to each test.
  1 vs 8 devices is in ``tests/test_sharding.py`` (it needs a subprocess).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lr_jax
from lr_jax import optimizers, schedules
from tests.helpers import SCHEDULE_CASES, build

RTOL = 1e-6  # a few float32 ulp
STEPS = np.array(
  [0, 1, 2, 5, 9, 10, 11, 29, 30, 31, 50, 99, 100, 101, 1000, 10**6, 2**24 + 1, 2**30, 2**31 - 1], np.int32
)
PARAMS = {"w": jnp.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.5]]), "b": jnp.array([0.1, -0.1, 0.0])}


def _grads(t):
  return jax.tree.map(lambda p: jnp.cos(p * (t + 1.0)) + 0.05 * t, PARAMS)


def _optimizers():
  S, O = schedules, optimizers
  return {
    "sgd": lambda lr: O.sgd(S.cosine_annealing(lr, 10), momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adagrad": lambda lr: O.adagrad(lr, lr_decay=0.01),
    "rmsprop": lambda lr: O.rmsprop(S.one_cycle(lr, 10), momentum=0.5, centered=True),
    "adam": lambda lr: O.adam(S.warmup(S.constant(lr), 3), amsgrad=True, weight_decay=1e-2),
    "adamw": lambda lr: O.adamw(lr, weight_decay=0.1),
  }


OPTS = _optimizers()


def _train(make, lr, n=6):
  tx = make(lr)
  p, s = PARAMS, tx.init(PARAMS)
  for t in range(n):
    u, s = tx.update(_grads(t), s, p)
    p = optax.apply_updates(p, u)
  return p


def _bits(tree):
  return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("name", sorted(OPTS))
def test_optimizer_jit_vs_eager_and_vmap_vs_loop(name):
  make = OPTS[name]
  lrs = jnp.array([0.01, 0.05, 0.2], jnp.float32)
  eager = [_train(make, float(lr)) for lr in lrs]
  jitted = jax.jit(lambda lr: _train(make, lr))
  looped = [jitted(lr) for lr in lrs]
  vmapped = jax.jit(jax.vmap(lambda lr: _train(make, lr)))(lrs)
  for i in range(len(lrs)):
    lane = jax.tree.map(lambda x, i=i: x[i], vmapped)
    np.testing.assert_allclose(looped[i]["w"], eager[i]["w"], rtol=RTOL, atol=1e-7)  # observed <= 1 ulp
    np.testing.assert_allclose(looped[i]["b"], eager[i]["b"], rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(lane["w"], looped[i]["w"], rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(lane["b"], looped[i]["b"], rtol=RTOL, atol=1e-7)
  # the same compiled program twice: the same bits
  assert _bits(jitted(lrs[1])) == _bits(looped[1])


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_schedule_jit_vs_eager_and_vmap_vs_loop(name):
  ctor, kwargs, alts, _ = SCHEDULE_CASES[name]
  s = build(ctor, kwargs)
  eager = np.asarray(s(STEPS))
  jitted = jax.jit(lambda sch, t: sch(t))
  whole = np.asarray(jitted(s, STEPS))
  one_by_one = np.array([jitted(s, np.int32(t)) for t in STEPS])
  scale = np.max(np.abs(eager))
  np.testing.assert_allclose(whole, eager, rtol=RTOL, atol=RTOL * scale, err_msg=name)
  np.testing.assert_allclose(one_by_one, whole, rtol=RTOL, atol=RTOL * scale, err_msg=name)
  # a batch of two schedules (a pytree with a leading axis) vmapped vs each alone
  other = build(ctor, {**kwargs, **alts})
  if jax.tree.structure(other) == jax.tree.structure(s) and all(
    np.shape(a) == np.shape(b) for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(other))
  ):
    batch = jax.tree.map(
      lambda a, b: jnp.stack([jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)]), s, other
    )
    both = np.asarray(jax.jit(jax.vmap(lambda sch: sch(STEPS)))(batch))
    for i, single in enumerate((s, other)):
      ref = np.asarray(jitted(single, STEPS))
      np.testing.assert_allclose(both[i], ref, rtol=RTOL, atol=RTOL * np.max(np.abs(ref)), err_msg=name)


def test_lr_find_and_sweep_repeat_bit_for_bit():
  loss = lambda w, b: jnp.mean((w - b) ** 2)
  batches = jnp.asarray(np.random.RandomState(0).randn(4, 3).astype(np.float32))
  kw = dict(
    optimizer=lambda lr: optimizers.adam(lr),
    min_lr=1e-4,
    max_lr=10.0,
    num_steps=30,
    num_repeats=2,
    key=jax.random.key(1),
  )
  a, b = lr_jax.lr_find(loss, jnp.ones(3), batches, **kw), lr_jax.lr_find(loss, jnp.ones(3), batches, **kw)
  assert a.repeat_losses.tobytes() == b.repeat_losses.tobytes() and a.suggestion == b.suggestion
  skw = dict(
    optimizer=lambda h: optimizers.sgd(schedules.one_cycle(h["lr"], 15), momentum=0.9),
    grid={"lr": [0.01, 0.1, 3.0]},
    num_steps=15,
  )
  a, b = lr_jax.sweep(loss, jnp.ones(3), batches, **skw), lr_jax.sweep(loss, jnp.ones(3), batches, **skw)
  assert a.losses.tobytes() == b.losses.tobytes() and a.train_loss.tobytes() == b.train_loss.tobytes()


def test_sweep_lane_matches_a_plain_optax_loop():
  """A sweep's lane is the plain loop of its docstring (vmapped + scanned vs eager: within RTOL)."""
  loss = lambda w, b: jnp.mean((w - b) ** 2)
  batches = jnp.asarray(np.random.RandomState(1).randn(3, 4).astype(np.float32))
  make = lambda lr: optimizers.adam(schedules.cosine_annealing(lr, 12))
  res = lr_jax.sweep(
    loss, jnp.zeros(4), batches, optimizer=lambda h: make(h["lr"]), grid={"lr": [0.05, 0.2]}, num_steps=12
  )
  for i, lr in enumerate([0.05, 0.2]):
    tx, p = make(lr), jnp.zeros(4)
    s, losses = tx.init(p), []
    for t in range(12):
      val, g = jax.value_and_grad(loss)(p, batches[t % 3])
      losses.append(float(val))
      u, s = tx.update(g, s, p)
      p = optax.apply_updates(p, u)
    np.testing.assert_allclose(res.losses[i], losses, rtol=RTOL * 5)  # 12 steps of ~1 ulp each
    train = np.mean([float(loss(p, batches[j])) for j in range(3)])  # the mean over every batch
    np.testing.assert_allclose(res.train_loss[i], train, rtol=RTOL * 5)
