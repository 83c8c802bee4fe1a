"""Dtypes follow JAX's convention, and with x64 the rates are PyTorch's float64 rates.

With ``jax_enable_x64`` (scoped with ``jax.enable_x64(True)``), a schedule built from Python floats
computes in float64 (JAX's default float dtype, ``jnp.result_type(float)``), as PyTorch's schedulers do
with Python floats: the rate at update t equals ``get_last_lr()`` after t calls of ``scheduler.step()``
to ``X64_RTOL``. Built from float32 arrays it stays float32 (within float32 rounding of PyTorch); with
x64 off everything is float32. ``reduce_on_plateau``'s scale and best value follow the params' dtype,
so a float64 epoch loop with ``plateau_step`` equals ``ReduceLROnPlateau`` exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S

torch = pytest.importorskip("torch")
sched = torch.optim.lr_scheduler

CALL = jax.jit(lambda s, t: s(t))  # one compile per schedule structure, leaf dtypes and x64 mode
X64_RTOL = 1e-12  # float64 against PyTorch's float64 Python arithmetic (recursive forms: ~1e-15 per step)
F32_RTOL = 1e-5  # float32 against the same float64 rates
BASE = 0.1


def torch_rates(make, n, key="lr", every=1):
  """``param_groups[0][key]`` used by each of ``n`` updates; ``scheduler.step()`` every ``every`` updates."""
  param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
  opt = torch.optim.SGD([param], lr=BASE, momentum=0.9)
  s = make(opt)
  out = []
  for i in range(n):
    out.append(opt.param_groups[0][key])
    opt.step()
    if (i + 1) % every == 0:
      s.step()
  return np.array(out, np.float64)


# name -> (PyTorch scheduler on SGD(lr=BASE, momentum=0.9), lr_jax twin from Python floats, updates,
#          extra torch_rates arguments)
TWINS = {
  "step_decay": (lambda o: sched.StepLR(o, 30, 0.5), lambda: S.step_decay(BASE, 30, 0.5), 200, {}),
  "multistep_decay": (
    lambda o: sched.MultiStepLR(o, [30, 80], 0.3),
    lambda: S.multistep_decay(BASE, [30, 80], 0.3),
    200,
    {},
  ),
  "exponential_decay": (
    lambda o: sched.ExponentialLR(o, 0.97),
    lambda: S.exponential_decay(BASE, 0.97),
    300,
    {},
  ),
  "polynomial_decay": (
    lambda o: sched.PolynomialLR(o, 100, 2.0),
    lambda: S.polynomial_decay(BASE, 100, power=2.0),
    150,
    {},
  ),
  "linear": (lambda o: sched.LinearLR(o, 0.3, 0.9, 50), lambda: S.linear(BASE * 0.3, BASE * 0.9, 50), 80, {}),
  "linear_lr": (
    lambda o: sched.LinearLR(o, 0.25, 0.75, 50),
    lambda: S.linear_lr(BASE, 0.25, 0.75, 50),
    80,
    {},
  ),
  "constant_lr": (lambda o: sched.ConstantLR(o, 0.5, 30), lambda: S.constant_lr(BASE, 0.5, 30), 60, {}),
  "constant": (lambda o: sched.ConstantLR(o, 1.0, 3), lambda: S.constant(BASE), 10, {}),
  "cosine_annealing": (
    lambda o: sched.CosineAnnealingLR(o, 300, 0.001),
    lambda: S.cosine_annealing(BASE, 300, 0.001),
    301,
    {},
  ),
  "cosine_warm_restarts": (
    lambda o: sched.CosineAnnealingWarmRestarts(o, 10, 2, 0.001),
    lambda: S.cosine_warm_restarts(BASE, 10, 2, 0.001),
    300,
    {},
  ),
  "cyclic_triangular": (
    lambda o: sched.CyclicLR(o, 0.01, BASE, 20, 30, cycle_momentum=False),
    lambda: S.cyclic(0.01, BASE, 20, 30),
    300,
    {},
  ),
  "cyclic_triangular2": (
    lambda o: sched.CyclicLR(o, 0.01, BASE, 20, 30, mode="triangular2", cycle_momentum=False),
    lambda: S.cyclic(0.01, BASE, 20, 30, mode="triangular2"),
    300,
    {},
  ),
  "cyclic_exp_range": (
    lambda o: sched.CyclicLR(o, 0.01, BASE, 20, 30, mode="exp_range", gamma=0.999, cycle_momentum=False),
    lambda: S.cyclic(0.01, BASE, 20, 30, mode="exp_range", gamma=0.999),
    300,
    {},
  ),
  "one_cycle": (
    lambda o: sched.OneCycleLR(o, BASE, total_steps=600, cycle_momentum=False),
    lambda: S.one_cycle(BASE, 600),
    600,
    {},
  ),
  "one_cycle_three_phase_linear": (
    lambda o: sched.OneCycleLR(
      o,
      BASE,
      total_steps=300,
      pct_start=0.25,
      anneal_strategy="linear",
      three_phase=True,
      cycle_momentum=False,
    ),
    lambda: S.one_cycle(BASE, 300, pct_start=0.25, anneal="linear", three_phase=True),
    300,
    {},
  ),
  "one_cycle_momentum": (
    lambda o: sched.OneCycleLR(o, BASE, total_steps=300, base_momentum=0.85, max_momentum=0.95),
    lambda: S.one_cycle_momentum(300, base_momentum=0.85, max_momentum=0.95),
    300,
    {"key": "momentum"},
  ),
  "warmup": (
    lambda o: sched.SequentialLR(o, [sched.LinearLR(o, 0.1, 1.0, 10), sched.CosineAnnealingLR(o, 100)], [10]),
    lambda: S.warmup(S.cosine_annealing(BASE, 100), 10, init_value=0.1 * BASE),
    110,
    {},
  ),
  "join": (
    lambda o: sched.SequentialLR(o, [sched.ConstantLR(o, 0.5, 2), sched.ExponentialLR(o, 0.5)], [3]),
    lambda: S.join([S.constant_lr(BASE, 0.5, 2), S.exponential_decay(BASE, 0.5)], [3]),
    12,
    {},
  ),
  "multiply": (
    lambda o: sched.ChainedScheduler([sched.ExponentialLR(o, 0.9), sched.StepLR(o, 2, 0.5)]),
    lambda: S.multiply(S.exponential_decay(BASE, 0.9), S.step_decay(1.0, 2, 0.5)),
    40,
    {},
  ),
  "per_epoch": (
    lambda o: sched.CosineAnnealingLR(o, 12, 0.001),
    lambda: S.per_epoch(S.cosine_annealing(BASE, 12, 0.001), 7),
    84,
    {"every": 7},
  ),
}


def _float32_leaves(s):
  """``s`` with every floating leaf a float32 array (integer leaves, Python ints included, kept)."""

  def one(x):
    if isinstance(x, float) or (not isinstance(x, int) and jnp.issubdtype(np.asarray(x).dtype, jnp.floating)):
      return np.asarray(x, np.float32)
    return x

  return jax.tree.map(one, s)


@pytest.fixture(scope="module")
def torch_curves():
  return {name: torch_rates(make, n, **kw) for name, (make, _, n, kw) in TWINS.items()}


def _rel(got, want):
  return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("name", sorted(TWINS))
def test_x64_python_float_schedules_are_float64_and_equal_torch(name, torch_curves):
  want = torch_curves[name]
  steps = np.arange(len(want))
  with jax.enable_x64(True):
    s = TWINS[name][1]()
    assert s.dtype == jnp.float64
    for got in (CALL(s, steps), s(steps)):  # traced, and the cached eager program
      assert got.dtype == jnp.float64, (name, got.dtype)
      assert _rel(got, want) <= X64_RTOL, (name, _rel(got, want))
    s32 = _float32_leaves(s)  # float32 arrays stay float32 under x64
    got32 = CALL(s32, steps)
    assert got32.dtype == jnp.float32 and s32(steps).dtype == jnp.float32
    assert _rel(got32, want) <= F32_RTOL, (name, _rel(got32, want))
  got = CALL(TWINS[name][1](), steps)  # x64 off: float32, as before
  assert got.dtype == jnp.float32
  assert _rel(got, want) <= F32_RTOL, (name, _rel(got, want))


def test_one_cycle_at_update_435_is_torch_float64_with_x64():
  # The example: float32 rates differ from PyTorch's float64 ones by ~3e-7 relative here.
  want = torch_rates(lambda o: sched.OneCycleLR(o, BASE, total_steps=600, cycle_momentum=False), 436)[435]
  with jax.enable_x64(True):
    got = S.one_cycle(0.1, 600)(435)
    assert got.dtype == jnp.float64
    assert abs(float(got) - want) <= X64_RTOL * want
  got32 = float(S.one_cycle(0.1, 600)(435))
  assert 1e-8 < abs(got32 - want) / want < 1e-5  # what x64 fixes


def test_x64_plateau_epoch_loop_in_float64_equals_torch():
  """SGD + ReduceLROnPlateau stepped per epoch on a validation loss, float64 params, x64 on."""
  rng = np.random.RandomState(0)
  w0 = rng.randn(3)
  grads = rng.randn(8, 4, 3)  # 8 epochs of 4 updates
  # A validation loss that stalls, so the plateau cuts several times (patience 1, cooldown 1).
  vals = [1.0, 0.5, 0.5000001, 0.49999, 0.6, 0.45, 0.45, 0.45]

  p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
  opt = torch.optim.SGD([p], lr=0.05, momentum=0.9)
  plateau = sched.ReduceLROnPlateau(opt, factor=0.3, patience=1, threshold=1e-4, cooldown=1, min_lr=5e-5)
  want_p, want_lr = [], []
  for e, val in enumerate(vals):
    for g in grads[e]:
      p.grad = torch.tensor(g, dtype=torch.float64)
      opt.step()
      want_p.append(p.detach().numpy().copy())
    plateau.step(val)
    want_lr.append(opt.param_groups[0]["lr"])

  with jax.enable_x64(True):
    tx = optax.chain(O.sgd(0.05, momentum=0.9), O.reduce_on_plateau(0.3, 1, 1e-4, cooldown=1, min_scale=1e-3))
    params = jnp.asarray(w0, jnp.float64)
    state = tx.init(params)
    assert state[1].scale.dtype == jnp.float64 and state[1].best.dtype == jnp.float64

    @jax.jit
    def step(p, s, g):
      u, s = tx.update(g, s, p)
      return optax.apply_updates(p, u), s

    got_p, got_lr = [], []
    for e, val in enumerate(vals):
      for g in grads[e]:
        params, state = step(params, state, jnp.asarray(g))
        got_p.append(np.asarray(params))
      state = O.plateau_step(state, val)
      got_lr.append(float(O.current_lr(state)))
    assert params.dtype == jnp.float64 and state[1].scale.dtype == jnp.float64
  assert len(set(want_lr)) >= 3, want_lr  # the loop really cuts
  np.testing.assert_allclose(got_lr, want_lr, rtol=X64_RTOL)
  np.testing.assert_allclose(np.array(got_p), np.array(want_p), rtol=1e-10, atol=1e-12)
