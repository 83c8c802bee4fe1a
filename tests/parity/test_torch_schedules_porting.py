"""Porting PyTorch loops: ``per_epoch`` (a scheduler stepped once per epoch), ``linear_lr`` /
``constant_lr`` (``LinearLR`` / ``ConstantLR``, relative factors) and ``SequentialLR([LinearLR, X])`` as
one ``join``. The rate of update t must equal ``get_last_lr()`` in PyTorch's loop at the same update.
"""

import jax
import numpy as np
import pytest

from lr_jax import schedules as S
from tests.helpers import f32

torch = pytest.importorskip("torch")
sched = torch.optim.lr_scheduler

CALL = jax.jit(lambda s, t: s(t))
BASE = f32(0.3)


def torch_epoch_loop(make, epochs, steps_per_epoch, base=BASE):
  """The rate of every update in PyTorch's per-epoch loop: ``steps_per_epoch`` updates, then ``step()``."""
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base)
  s = make(opt)
  rates = []
  for _ in range(epochs):
    for _ in range(steps_per_epoch):
      rates.append(opt.param_groups[0]["lr"])
      opt.step()
    s.step()
  return np.array(rates)


# name -> (PyTorch scheduler, lr_jax twin counted in epochs, epochs compared)
TWINS = {
  "step_decay": (lambda o: sched.StepLR(o, 3, 0.5), S.step_decay(BASE, 3, 0.5), 12),
  "multistep_decay": (lambda o: sched.MultiStepLR(o, [2, 5], 0.1), S.multistep_decay(BASE, [2, 5], 0.1), 8),
  "exponential_decay": (lambda o: sched.ExponentialLR(o, f32(0.9)), S.exponential_decay(BASE, f32(0.9)), 10),
  "polynomial_decay": (lambda o: sched.PolynomialLR(o, 6, 2.0), S.polynomial_decay(BASE, 6, power=2.0), 9),
  "linear": (
    lambda o: sched.LinearLR(o, 0.5, 1.0, 4),
    S.linear(f32(0.5 * BASE), BASE, 4),
    7,
  ),
  "linear_lr": (lambda o: sched.LinearLR(o, 0.25, 0.75, 5), S.linear_lr(BASE, 0.25, 0.75, 5), 8),
  "constant_lr": (lambda o: sched.ConstantLR(o, 0.5, 3), S.constant_lr(BASE, 0.5, 3), 6),
  "constant": (lambda o: sched.ConstantLR(o, 1.0, 3), S.constant(BASE), 4),
  "cosine_annealing": (
    lambda o: sched.CosineAnnealingLR(o, 8, f32(0.01)),
    S.cosine_annealing(BASE, 8, f32(0.01)),
    9,
  ),
  "cosine_warm_restarts": (
    lambda o: sched.CosineAnnealingWarmRestarts(o, 3, 2, f32(0.01)),
    S.cosine_warm_restarts(BASE, 3, 2, f32(0.01)),
    12,
  ),
  "cyclic": (
    lambda o: sched.CyclicLR(o, f32(0.01), BASE, 2, 3, cycle_momentum=False),
    S.cyclic(f32(0.01), BASE, 2, 3),
    11,
  ),
  "one_cycle": (
    lambda o: sched.OneCycleLR(o, BASE, total_steps=10, cycle_momentum=False),
    S.one_cycle(BASE, 10),
    9,
  ),
  "join": (
    lambda o: sched.SequentialLR(o, [sched.ConstantLR(o, 0.5, 2), sched.ExponentialLR(o, 0.5)], [3]),
    S.join([S.constant_lr(BASE, 0.5, 2), S.exponential_decay(BASE, 0.5)], [3]),
    8,
  ),
  "multiply": (
    lambda o: sched.ChainedScheduler([sched.ExponentialLR(o, f32(0.9)), sched.StepLR(o, 2, 0.5)]),
    S.multiply(S.exponential_decay(BASE, f32(0.9)), S.step_decay(1.0, 2, 0.5)),
    8,
  ),
}


@pytest.mark.parametrize("steps_per_epoch", [1, 4])
@pytest.mark.parametrize("name", sorted(TWINS))
def test_per_epoch_equals_torch_scheduler_stepped_once_per_epoch(name, steps_per_epoch):
  make, ours, epochs = TWINS[name]
  want = torch_epoch_loop(make, epochs, steps_per_epoch)
  got = CALL(S.per_epoch(ours, steps_per_epoch), np.arange(epochs * steps_per_epoch))
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize(
  "start, end, total", [(1 / 3, 1.0, 5), (0.25, 0.75, 7), (1.0, 0.0, 3), (0.1, 1.0, 1), (0.5, 0.5, 4)]
)
def test_linear_lr_is_torch_linear_lr(start, end, total):
  start, end = f32(start), f32(end)
  want = torch_epoch_loop(lambda o: sched.LinearLR(o, start, end, total), total + 5, 1)
  got = CALL(S.linear_lr(BASE, start, end, total), np.arange(total + 5))
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
  "factor, total", [(1 / 3, 5), (0.5, 1), (0.05, 3), (1.0, 2)]
)  # torch divides by factor: no 0
def test_constant_lr_is_torch_constant_lr(factor, total):
  factor = f32(factor)
  want = torch_epoch_loop(lambda o: sched.ConstantLR(o, factor, total), total + 4, 1)
  got = CALL(S.constant_lr(BASE, factor, total), np.arange(total + 4))
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-6, atol=1e-9)


def test_sequential_linear_lr_then_cosine_maps_to_one_join():
  w, total = 5, 20
  want = torch_epoch_loop(
    lambda o: sched.SequentialLR(
      o, [sched.LinearLR(o, 0.1, 1.0, w), sched.CosineAnnealingLR(o, total, f32(0.003))], [w]
    ),
    w + total + 1,
    1,
  )
  got = CALL(
    S.join([S.linear_lr(BASE, f32(0.1), 1.0, w), S.cosine_annealing(BASE, total, f32(0.003))], [w]),
    np.arange(w + total + 1),
  )
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-6, atol=1e-9)
