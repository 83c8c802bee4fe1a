"""Parity of the decay and cosine schedules with torch.optim.lr_scheduler, and of their Keras twins.

The rate at step t must equal ``scheduler.get_last_lr()`` after t calls of ``scheduler.step()`` (the
optimizer is a dummy SGD whose lr is the schedule's initial value). Hyperparameters are drawn by
hypothesis and rounded to float32 before they reach either side, so the comparison is of the
algorithms, not of the float32 representation of an input. Keras is not a dependency: its formulas are
written out below in plain float64 Python, from the Keras documentation of each schedule.
"""

import math

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lr_jax import schedules as S
from tests.helpers import f32

torch = pytest.importorskip("torch")
lr_scheduler = torch.optim.lr_scheduler

N = 300
STEPS = np.arange(N)
CALL = jax.jit(lambda s, t: s(t))
RTOL = 1e-5  # float32 against PyTorch's float64 Python arithmetic
ATOL = 1e-7  # for rates that decay to ~0 (relative error is meaningless there)



def torch_rates(make, base_lr, n=N):
  """``get_last_lr()`` at steps 0..n-1: after construction, then after each ``step()``."""
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base_lr)
  sched = make(opt)
  out = [sched.get_last_lr()[0]]
  for _ in range(n - 1):
    opt.step()
    sched.step()
    out.append(sched.get_last_lr()[0])
  return np.array(out)


def close(ours, theirs, scale, rtol=RTOL, atol=ATOL):
  np.testing.assert_allclose(np.asarray(ours, np.float64), theirs, rtol=rtol, atol=atol * scale)


base = st.floats(0.01, 10.0).map(f32)
gamma = st.floats(0.05, 1.0).map(f32)
length = st.integers(1, 120)


@given(lr=base, step_size=length, g=gamma)
def test_step_decay_is_step_lr(lr, step_size, g):
  theirs = torch_rates(lambda o: lr_scheduler.StepLR(o, step_size=step_size, gamma=g), lr)
  close(CALL(S.step_decay(lr, step_size, g), STEPS), theirs, lr)


@given(
  lr=base,
  milestones=st.lists(st.integers(0, N + 20), max_size=5).map(sorted),
  g=st.floats(0.05, 2.0).map(f32),
)
def test_multistep_decay_is_multistep_lr(lr, milestones, g):
  # duplicates compound and a milestone at 0 applies at step 0, in both
  theirs = torch_rates(lambda o: lr_scheduler.MultiStepLR(o, milestones=milestones, gamma=g), lr)
  close(CALL(S.multistep_decay(lr, milestones, g), STEPS), theirs, lr)


def test_multistep_with_duplicated_milestones_is_multistep_lr():
  theirs = torch_rates(lambda o: lr_scheduler.MultiStepLR(o, milestones=[3, 7, 7, 7, 20], gamma=0.5), 0.8)
  close(
    S.multistep_decay(0.8, [3, 7, 7, 7, 20], 0.5)(STEPS), theirs, 0.8, rtol=1e-7, atol=0
  )  # 0.8 in float32


@given(lr=base, g=st.floats(0.9, 1.0).map(f32))
def test_exponential_decay_is_exponential_lr(lr, g):
  theirs = torch_rates(lambda o: lr_scheduler.ExponentialLR(o, gamma=g), lr)
  close(CALL(S.exponential_decay(lr, g), STEPS), theirs, lr)


@given(lr=base, total=length, power=st.floats(0.0, 4.0).map(f32))
def test_polynomial_decay_is_polynomial_lr(lr, total, power):
  theirs = torch_rates(lambda o: lr_scheduler.PolynomialLR(o, total_iters=total, power=power), lr)
  # atol: PyTorch multiplies step ratios (1 - t/T) / (1 - (t-1)/T) ** power recursively; we round 1 - t/T once
  close(CALL(S.polynomial_decay(lr, total, 0.0, power), STEPS), theirs, lr, atol=1e-6)


@given(lr=base, start=st.floats(0.01, 1.0).map(f32), end=st.floats(0.0, 1.0).map(f32), total=length)
def test_linear_is_linear_lr(lr, start, end, total):
  theirs = torch_rates(
    lambda o: lr_scheduler.LinearLR(o, start_factor=start, end_factor=end, total_iters=total), lr
  )
  close(CALL(S.linear(lr * start, lr * end, total), STEPS), theirs, lr, atol=1e-6)


@given(lr=base, total=st.integers(1, 20))
def test_constant_is_constant_lr_with_factor_one(lr, total):
  theirs = torch_rates(lambda o: lr_scheduler.ConstantLR(o, factor=1.0, total_iters=total), lr)
  close(CALL(S.constant(lr), STEPS), theirs, lr, rtol=0, atol=0)


@given(lr=base, total=st.integers(1, N - 1), end_frac=st.one_of(st.just(0.0), st.floats(1e-3, 0.9)))
def test_cosine_annealing_is_cosine_annealing_lr_up_to_t_max(lr, total, end_frac):
  end = f32(lr * end_frac)
  theirs = torch_rates(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=end), lr)
  ours = np.asarray(CALL(S.cosine_annealing(lr, total, end), STEPS))
  close(ours[: total + 1], theirs[: total + 1], lr)
  # Documented difference: past T_max PyTorch climbs back up (period 2 T_max); we hold end_value.
  np.testing.assert_array_equal(ours[total:], np.float32(end))


@given(
  lr=base,
  period=st.integers(1, 40),
  mult=st.sampled_from([1, 2, 3]),
  end_frac=st.one_of(st.just(0.0), st.floats(1e-3, 0.9)),
)
def test_cosine_warm_restarts_is_cosine_annealing_warm_restarts(lr, period, mult, end_frac):
  end = f32(lr * end_frac)
  theirs = torch_rates(
    lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=period, T_mult=mult, eta_min=end), lr
  )
  close(CALL(S.cosine_warm_restarts(lr, period, mult, end), STEPS), theirs, lr, atol=1e-6)


@pytest.mark.parametrize("mult", [1, 2, 3])
def test_cosine_warm_restarts_long_run(mult):
  theirs = torch_rates(
    lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=mult, eta_min=0.01), 0.5, 5000
  )
  ours = S.cosine_warm_restarts(0.5, 3, mult, 0.01)(np.arange(5000))
  close(ours, theirs, 0.5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Keras twins, written out from the Keras docs (keras.optimizers.schedules).


def keras_inverse_time_decay(step, initial_learning_rate, decay_steps, decay_rate, staircase):
  p = step / decay_steps
  if staircase:
    p = math.floor(p)
  return initial_learning_rate / (1 + decay_rate * p)


def keras_exponential_decay(step, initial_learning_rate, decay_steps, decay_rate, staircase):
  p = step / decay_steps
  if staircase:
    p = math.floor(p)
  return initial_learning_rate * decay_rate**p


def keras_piecewise_constant_decay(step, boundaries, values):
  if step <= boundaries[0]:
    return values[0]
  for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
    if low < step <= high:
      return v
  return values[-1]


@given(lr=base, decay_steps=st.integers(1, 60), rate=st.floats(0.0, 5.0).map(f32), staircase=st.booleans())
def test_inverse_time_decay_is_keras_inverse_time_decay(lr, decay_steps, rate, staircase):
  theirs = [keras_inverse_time_decay(t, lr, decay_steps, rate, staircase) for t in STEPS]
  close(CALL(S.inverse_time_decay(lr, rate, decay_steps, staircase), STEPS), theirs, lr)


@given(lr=base, decay_steps=st.integers(1, 60), rate=gamma, staircase=st.booleans())
def test_exponential_decay_is_keras_exponential_decay(lr, decay_steps, rate, staircase):
  theirs = [keras_exponential_decay(t, lr, decay_steps, rate, staircase) for t in STEPS]
  close(CALL(S.exponential_decay(lr, rate, decay_steps, staircase), STEPS), theirs, lr)


@given(
  boundaries=st.lists(st.integers(0, N), min_size=1, max_size=5, unique=True).map(sorted), data=st.data()
)
def test_piecewise_constant_is_keras_piecewise_constant_decay(boundaries, data):
  values = data.draw(st.lists(base, min_size=len(boundaries) + 1, max_size=len(boundaries) + 1))
  theirs = [keras_piecewise_constant_decay(t, boundaries, values) for t in STEPS]
  close(CALL(S.piecewise_constant(boundaries, values), STEPS), theirs, 1.0, rtol=0, atol=0)


def test_piecewise_constant_boundary_step_has_the_old_value_as_in_keras():
  # Keras' documented example: boundaries [100000, 110000], values [1.0, 0.5, 0.1].
  s = S.piecewise_constant([100000, 110000], [1.0, 0.5, 0.1])
  ts = [0, 100000, 100001, 110000, 110001]
  close(
    s(np.array(ts)), [keras_piecewise_constant_decay(t, [100000, 110000], [1.0, 0.5, 0.1]) for t in ts], 1.0
  )
  np.testing.assert_array_equal(s(np.array(ts)), np.float32([1.0, 1.0, 0.5, 0.5, 0.1]))


def test_inverse_time_decay_is_adagrad_lr_decay():
  # torch Adagrad uses clr = lr / (1 + (k - 1) * lr_decay) at its k-th update (k from 1). With a constant
  # gradient 1 and eps=0 the k-th update is clr / sqrt(k), so clr = -delta_k * sqrt(k).
  lr, lr_decay = 0.3, 0.05
  param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
  opt = torch.optim.Adagrad([param], lr=lr, lr_decay=lr_decay, eps=0.0)
  clr, prev = [], 0.0
  for k in range(1, 51):
    param.grad = torch.ones(1, dtype=torch.float64)
    opt.step()
    now = float(param.detach()[0])
    clr.append((prev - now) * math.sqrt(k))
    prev = now
  close(S.inverse_time_decay(lr, lr_decay)(np.arange(50)), clr, lr)
