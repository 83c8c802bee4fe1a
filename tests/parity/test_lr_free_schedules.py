"""The learning-rate-free optimizers driven by an lr_jax schedule == the references driven by a PyTorch
``torch.optim.lr_scheduler`` (stepped after every ``optimizer.step()``, as a training loop does).

In every reference (prodigyopt 1.1.2, dadaptation 3.2, dog-optimizer 1.0.3) the group's ``lr`` is a
multiplier of the estimated step size that is read at every step, and a scheduler changes it; lr_jax
takes the same multiplier as ``learning_rate`` (a schedule with peak 1). Three schedules, all
``schedules.warmup(schedules.cosine_annealing(1.0, T), W, init_value)``:

* ``cosine`` (W = 0, T = 200) against ``CosineAnnealingLR(T_max=200)`` (PyTorch's recursive form:
  equal to the closed form to rounding);
* ``warm-up + cosine`` (W = 20 from 0.05, T = 180) against ``SequentialLR([LinearLR(start_factor=0.05,
  total_iters=20), CosineAnnealingLR(T_max=180)], milestones=[20])``;
* ``warm-up from 0 + cosine`` (W = 20 from 0): the first update has multiplier 0 (Prodigy and
  D-Adaptation skip it; DoG takes a zero step and counts the gradient), against ``LambdaLR`` with the same formula written here; not for DAdaptSGD, which
  divides by the norm of the first gradient it accumulates and accumulates none at ``lr == 0``
  (ZeroDivisionError in the reference; lr_jax waits for the first update it takes).

The harness of ``test_prodigy.py`` (200 updates of the same noisy gradients of a random convex,
non-quadratic two-leaf problem): float64, the params after 200 updates within 1e-10 relative and the
estimated step size (``d``; DoG: ``eta``, LDoG: one per leaf) after every update equal within 1e-10.
The lr_jax runs are one compiled program (each method's schedules vmapped: their hyperparameters are
traced).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_jax import optimizers as O
from lr_jax import schedules as S
from tests.parity.test_prodigy import STEPS, check_float64, jax_problem, run_torch, scan

torch = pytest.importorskip("torch")
prodigyopt = pytest.importorskip("prodigyopt")
dadaptation = pytest.importorskip("dadaptation")
dog_pkg = pytest.importorskip("dog")

WARMUP = 20


def _eta_of(s):
  return jnp.stack(jax.tree.leaves(s.eta)) if isinstance(s.eta, dict) else s.eta


# name -> (lr_jax constructor, reference class, reference kwargs, lr_jax step size, reference step size)
METHODS = {
  "prodigy": (O.prodigy, prodigyopt.Prodigy, {}, lambda s: s.d, lambda o: o.param_groups[0]["d"]),
  "prodigy (bias correction, safeguard warm-up, decay)": (
    functools.partial(O.prodigy, use_bias_correction=True, safeguard_warmup=True, weight_decay=0.01),
    prodigyopt.Prodigy,
    {"use_bias_correction": True, "safeguard_warmup": True, "weight_decay": 0.01},
    lambda s: s.d,
    lambda o: o.param_groups[0]["d"],
  ),
  "dadapt_adam": (O.dadapt_adam, dadaptation.DAdaptAdam, {}, lambda s: s.d, lambda o: o.param_groups[0]["d"]),
  "dadapt_sgd": (
    functools.partial(O.dadapt_sgd, momentum=0.9),
    dadaptation.DAdaptSGD,
    {"momentum": 0.9},
    lambda s: s.d,
    lambda o: o.param_groups[0]["d"],
  ),
  "dadapt_adagrad": (
    O.dadapt_adagrad,
    dadaptation.DAdaptAdaGrad,
    {},
    lambda s: s.d,
    lambda o: o.param_groups[0]["d"],
  ),
  "dog": (O.dog, dog_pkg.DoG, {}, _eta_of, lambda o: float(o.param_groups[0]["eta"][0])),
  "ldog": (O.ldog, dog_pkg.LDoG, {}, _eta_of, lambda o: [float(e) for e in o.param_groups[0]["eta"]]),
}


def _from_zero(k: int) -> float:
  """The ``warm-up from 0 + cosine`` multiplier at update ``k``, written out (a LambdaLR factor)."""
  if k < WARMUP:
    return k / WARMUP
  return 0.5 * (1.0 + math.cos(math.pi * (k - WARMUP) / (STEPS - WARMUP)))


# schedule name -> ((warm-up steps, cosine steps, warm-up start) of the lr_jax schedule, torch scheduler)
SCHEDULES = {
  "cosine": ((0, STEPS, 0.0), lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)),
  "warm-up + cosine": (
    (WARMUP, STEPS - WARMUP, 0.05),
    lambda opt: torch.optim.lr_scheduler.SequentialLR(
      opt,
      [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=WARMUP),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS - WARMUP),
      ],
      milestones=[WARMUP],
    ),
  ),
  "warm-up from 0 + cosine": (
    (WARMUP, STEPS - WARMUP, 0.0),
    lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, _from_zero),
  ),
}


def _schedule(warmup_steps, cosine_steps, init_value):
  """``schedules.warmup(schedules.cosine_annealing(1.0, cosine_steps), warmup_steps, init_value)``."""
  return S.warmup(S.cosine_annealing(jnp.float64(1.0), cosine_steps), warmup_steps, init_value=init_value)


def _schedules_of(method):
  """Every schedule, but not the one from 0 for DAdaptSGD (its reference divides by zero)."""
  return [s for s in SCHEDULES if not (method == "dadapt_sgd" and s == "warm-up from 0 + cosine")]


@functools.cache
def _ours():
  """{(method, schedule): (param leaves, step size after every update)}: one program, each method's
  schedules vmapped (their hyperparameters are traced)."""
  with jax.enable_x64(True):
    # XLA:CPU without its expensive LLVM passes (compiling is this file's cost; 200 updates are not)
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def everything(init, a, c, noise):
      out = {}
      for m, (make, _, _, step_size, _) in METHODS.items():
        lanes = jnp.asarray([SCHEDULES[s][0] for s in _schedules_of(m)], jnp.float64).T
        one = lambda w, t, i, make=make, step_size=step_size: scan(
          make(_schedule(w, t, i)), step_size, init, a, c, noise
        )[:2]
        out[m] = jax.vmap(one)(*lanes)
      return out

    out = jax.device_get(everything(*jax_problem(jnp.float64)))
  return {
    (m, s): ([np.asarray(v[j]) for v in jax.tree.leaves(p)], np.asarray(ds[j]))
    for m, (p, ds) in out.items()
    for j, s in enumerate(_schedules_of(m))
  }


def _reference(method, schedule):
  _, cls, kwargs, _, step_size = METHODS[method]
  held = {}

  def make(ps):
    opt = cls(ps, **kwargs)
    held["scheduler"] = SCHEDULES[schedule][1](opt)
    return opt

  lrs = []

  def after_step(k):
    held["scheduler"].step()
    lrs.append(held["scheduler"].get_last_lr()[0])

  return run_torch(make, torch.float64, step_size, after_step=after_step), lrs


@pytest.mark.parametrize("method", METHODS)
def test_scheduled_run_equals_the_reference_with_a_torch_scheduler(method):
  for schedule in _schedules_of(method):
    ref, lrs = _reference(method, schedule)
    mine = _ours()[method, schedule]
    check_float64(f"{method} + {schedule}, float64", mine, ref)
    d = np.asarray(ref[1])
    assert np.all(np.isfinite(d)) and np.max(d) > 10 * np.min(d), (method, schedule)  # the estimate moved
    if schedule != "cosine":  # the scheduler did ramp up and decay
      assert lrs[WARMUP - 1] == pytest.approx(1.0) and 0 < lrs[-2] < 1e-3, lrs[:3]


def test_schedules_are_the_torch_multipliers():
  """The lr_jax schedules give the multipliers the torch schedulers set (so the parity above is the
  optimizers', not a schedule's): 1e-12 absolute, PyTorch's cosine being recursive."""
  with jax.enable_x64(True):
    for name, (sched, make_torch) in SCHEDULES.items():
      opt = torch.optim.SGD([torch.zeros(1, dtype=torch.float64)], lr=1.0)
      scheduler, torch_lrs = make_torch(opt), []
      for _ in range(STEPS):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
      ours = np.asarray(jax.jit(_schedule(*sched))(jnp.arange(STEPS)))
      np.testing.assert_allclose(ours, torch_lrs, rtol=0, atol=1e-12, err_msg=name)
