"""Shared test helpers: float32 rounding, tolerant comparison, and the registries that drive the
generic tests (one entry per public schedule / optimizer)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax import schedules as S
from lr_jax.optimizers import reduce_on_plateau


def f32(x) -> float:
  """The value a float32 schedule really holds for the Python float ``x``."""
  return float(np.float32(x))


def close(got, want, rtol=1e-5, atol=1e-7):
  """``assert_allclose`` of ``got`` and ``want``, both compared in float64 (float32 tolerances)."""
  np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


VARIANTS = {"eager": lambda f: f, "jit": jax.jit}


def _nested_warmup():
  return dict(schedule=S.cosine_annealing(1.0, 100, 0.01), warmup_steps=10, init_value=0.0)


# name -> (constructor, kwargs, alternative values for each traceable numeric hyperparameter,
#          one invalid value per hyperparameter that must raise eagerly / give NaN when traced)
SCHEDULE_CASES = {
  "constant": (S.__dict__.get("constant"), dict(value=0.5), dict(value=0.25), dict(value=float("nan"))),
  "step_decay": (
    S.__dict__.get("step_decay"),
    dict(init_value=1.0, step_size=30, gamma=0.5),
    dict(init_value=2.0, step_size=7, gamma=0.3),
    dict(step_size=0, gamma=-0.5),
  ),
  "multistep_decay": (
    S.__dict__.get("multistep_decay"),
    dict(init_value=1.0, milestones=[30, 80], gamma=0.5),
    dict(init_value=2.0, milestones=[10, 90], gamma=0.3),
    dict(milestones=[80, 30], gamma=0.0),
  ),
  "exponential_decay": (
    S.__dict__.get("exponential_decay"),
    dict(init_value=1.0, gamma=0.97, decay_steps=5, transition_begin=10),
    dict(init_value=2.0, gamma=0.9, decay_steps=3, transition_begin=4),
    dict(gamma=0.0, decay_steps=0, transition_begin=-1),
  ),
  "inverse_time_decay": (
    S.__dict__.get("inverse_time_decay"),
    dict(init_value=1.0, decay_rate=0.5, decay_steps=10),
    dict(init_value=2.0, decay_rate=0.1, decay_steps=3),
    dict(decay_rate=-1.0, decay_steps=0),
  ),
  "polynomial_decay": (
    S.__dict__.get("polynomial_decay"),
    dict(init_value=1.0, total_steps=30, end_value=0.01, power=2.0, cycle=True),
    dict(init_value=2.0, total_steps=40, end_value=0.1, power=0.5),
    dict(total_steps=0, power=-1.0),
  ),
  "linear": (
    S.__dict__.get("linear"),
    dict(init_value=0.1, end_value=1.0, total_steps=50),
    dict(init_value=0.5, end_value=0.0, total_steps=20),
    dict(total_steps=0),
  ),
  "cosine_annealing": (
    S.cosine_annealing,
    dict(init_value=1.0, total_steps=100, end_value=0.01, exponent=1.5),
    dict(init_value=2.0, total_steps=40, end_value=0.1, exponent=1.0),
    dict(total_steps=0, exponent=0.0),
  ),
  "cosine_warm_restarts": (
    S.__dict__.get("cosine_warm_restarts"),
    dict(
      init_value=1.0,
      period=10,
      period_mult=2,
      end_value=0.01,
      decay=0.8,
      cycle_limit=6,
      k_decay=1.5,
      warmup_steps=3,
      warmup_init=0.1,
      warmup_prefix=True,
    ),
    dict(init_value=2.0, period=7, period_mult=1, end_value=0.1, decay=1.0, cycle_limit=0, k_decay=1.0),
    dict(period=0, period_mult=0.5, decay=0.0, cycle_limit=-1, k_decay=0.0, warmup_steps=-1),
  ),
  "cosine_with_min_lr": (
    S.__dict__.get("cosine_with_min_lr"),
    dict(peak_value=1.0, total_steps=100, warmup_steps=10, num_cycles=0.5, min_lr=0.05),
    dict(peak_value=2.0, total_steps=60, warmup_steps=0, num_cycles=1.5, min_lr=0.0),
    dict(total_steps=0, warmup_steps=-1, num_cycles=0.0),
  ),
  "cosine_with_restarts": (
    S.__dict__.get("cosine_with_restarts"),
    dict(peak_value=1.0, total_steps=100, warmup_steps=10, num_cycles=3),
    dict(peak_value=2.0, total_steps=60, warmup_steps=0, num_cycles=2),
    dict(total_steps=0, warmup_steps=-1, num_cycles=0.0),
  ),
  "cooldown": (
    S.__dict__.get("cooldown"),
    dict(schedule=S.cosine_annealing(1.0, 100, 0.01), start=40, length=30, shape="1-sqrt", end_value=0.001),
    dict(start=10, length=50, end_value=0.0),
    dict(start=-1, length=0),
  ),
  "noisy": (
    S.__dict__.get("noisy"),
    dict(
      schedule=S.cosine_annealing(1.0, 100, 0.01), seed=3, noise_range=[5, 90], noise_pct=0.5, noise_std=0.8
    ),
    dict(seed=4, noise_range=[0, 2**31 - 1], noise_pct=0.2, noise_std=1.0),
    dict(seed=-1, noise_range=[-1, 5], noise_pct=0.0, noise_std=0.0),
  ),
  "swalr": (
    S.__dict__.get("swalr"),
    dict(schedule=S.cosine_annealing(1.0, 100, 0.01), swa_start=50, swa_lr=0.05, anneal_epochs=10),
    dict(swa_start=20, swa_lr=0.2, anneal_epochs=0),
    dict(swa_start=-1, anneal_epochs=-1),
  ),
  "cyclic_momentum": (
    S.__dict__.get("cyclic_momentum"),
    dict(
      base_momentum=0.8,
      max_momentum=0.95,
      step_size_up=10,
      step_size_down=15,
      scale_fn=S.exponential_decay(1.0, 0.9),
      scale_mode="iterations",
    ),
    dict(base_momentum=0.85, max_momentum=0.9, step_size_up=4, step_size_down=6),
    dict(step_size_up=0, step_size_down=-1),
  ),
  "cyclic": (
    S.__dict__.get("cyclic"),
    dict(base_value=0.1, max_value=1.0, step_size_up=10, step_size_down=15, mode="exp_range", gamma=0.99),
    dict(base_value=0.2, max_value=2.0, step_size_up=4, step_size_down=6, gamma=0.9),
    dict(step_size_up=0, gamma=0.0),
  ),
  "one_cycle": (
    S.__dict__.get("one_cycle"),
    dict(
      peak_value=1.0,
      total_steps=100,
      pct_start=0.3,
      div_factor=25.0,
      final_div_factor=1e4,
      three_phase=True,
      pct_final=0.75,
    ),
    dict(
      peak_value=2.0, total_steps=60, pct_start=0.25, div_factor=10.0, final_div_factor=100.0, pct_final=0.8
    ),
    dict(total_steps=0, pct_start=1.5, div_factor=0.0, final_div_factor=-1.0, pct_final=1.0),
  ),
  "one_cycle_momentum": (
    S.__dict__.get("one_cycle_momentum"),
    dict(
      total_steps=100, pct_start=0.3, base_momentum=0.85, max_momentum=0.95, three_phase=True, pct_final=0.7
    ),
    dict(total_steps=60, pct_start=0.25, base_momentum=0.8, max_momentum=0.9, pct_final=0.9),
    dict(total_steps=0, pct_start=0.0, pct_final=0.3),
  ),
  "warmup": (
    S.__dict__.get("warmup"),
    _nested_warmup(),
    dict(warmup_steps=5, init_value=0.1),
    dict(warmup_steps=-1),
  ),
  "inverse_sqrt": (
    S.__dict__.get("inverse_sqrt"),
    dict(peak_value=1.0, warmup_steps=10),
    dict(peak_value=2.0, warmup_steps=4),
    dict(warmup_steps=-3),
  ),
  "warmup_stable_decay": (
    S.__dict__.get("warmup_stable_decay"),
    dict(
      peak_value=1.0,
      total_steps=100,
      warmup_steps=10,
      decay_steps=20,
      end_value=0.01,
      decay="cosine",
      warmup="1-sqrt",
      init_value=0.05,
    ),
    dict(peak_value=2.0, total_steps=80, warmup_steps=5, decay_steps=30, end_value=0.1, init_value=0.2),
    dict(total_steps=0, warmup_steps=-1, decay_steps=0),
  ),
  "join": (
    S.__dict__.get("join"),
    dict(
      schedules=[S.cosine_annealing(0.5, 10), S.cosine_annealing(1.0, 30), S.step_decay(0.8, 7, 0.5)],
      boundaries=[10, 40],
    ),
    dict(boundaries=[25, 30]),
    dict(boundaries=[-5, 10]),
  ),
  "multiply": (
    S.__dict__.get("multiply"),
    dict(schedules=(S.cosine_annealing(1.0, 100), S.cosine_annealing(2.0, 50))),
    dict(),
    dict(),
  ),
  "piecewise_interpolate": (
    S.__dict__.get("piecewise_interpolate"),
    dict(init_value=1.0, boundaries=[10, 30, 60], scales=[2.0, 0.1, 0.5], interpolate_type="cosine"),
    dict(init_value=0.5, boundaries=[5, 40, 45], scales=[4.0, 0.5, 0.0]),
    dict(boundaries=[30, 10, 60], scales=[2.0, -0.1, 0.5]),
  ),
  "piecewise_constant": (
    S.__dict__.get("piecewise_constant"),
    dict(boundaries=[10, 50], values=[1.0, 0.5, 0.1]),
    dict(boundaries=[5, 60], values=[2.0, 0.2, 0.02]),
    dict(boundaries=[50, 10]),
  ),
  "add": (
    S.__dict__.get("add"),
    dict(schedules=(S.cosine_annealing(1.0, 100), S.step_decay(0.5, 30, 0.5), 0.01)),
    dict(),
    dict(),
  ),
  "per_epoch": (
    S.__dict__.get("per_epoch"),
    dict(schedule=S.step_decay(1.0, 3, 0.5), steps_per_epoch=7),
    dict(steps_per_epoch=3),
    dict(steps_per_epoch=0),
  ),
  "linear_lr": (
    S.__dict__.get("linear_lr"),
    dict(base_value=0.3, start_factor=0.25, end_factor=1.0, total_iters=10),
    dict(base_value=0.5, start_factor=0.5, end_factor=0.2, total_iters=4),
    dict(start_factor=0.0, end_factor=1.5, total_iters=0),
  ),
  "constant_lr": (
    S.__dict__.get("constant_lr"),
    dict(base_value=0.3, factor=0.5, total_iters=10),
    dict(base_value=0.1, factor=0.25, total_iters=3),
    dict(factor=1.5, total_iters=0),
  ),
}

# name -> overrides of SCHEDULE_CASES' kwargs that the eager constructor rejects (besides the `bads`
# above and NaN/inf, added by the test). Between them they break every declared rule, which
# tests/test_schedules_validation.py checks against the declarations.
SCHEDULE_REJECTED = {
  "constant": [],
  "step_decay": [dict(step_size=-1), dict(gamma=0.0), dict(gamma=1.5)],
  "multistep_decay": [
    dict(milestones=[10.5, 20]),
    dict(milestones=[-1, 20]),
    dict(milestones=[80, 30]),
    dict(gamma=0.0),
    dict(gamma=1e30),
  ],
  "exponential_decay": [
    dict(gamma=1.5),
    dict(decay_steps=-2),
    dict(transition_begin=2.5),
    dict(init_value=-1.0, gamma=1.5, end_value=0.5),  # growth (toward a ceiling) needs init_value > 0
  ],
  "inverse_time_decay": [dict(decay_rate=-1e-3), dict(decay_steps=-1)],
  "polynomial_decay": [dict(total_steps=-5), dict(power=-0.5)],
  "linear": [dict(total_steps=-1)],
  "cosine_annealing": [dict(total_steps=-5), dict(exponent=-1.0)],
  "cosine_warm_restarts": [
    dict(period=0.5),
    dict(period_mult=0.9),
    dict(decay=1.5),
    dict(cycle_limit=2.5),
    dict(warmup_steps=-0.5),
  ],
  "cosine_with_min_lr": [dict(warmup_steps=100), dict(num_cycles=-1.0), dict(total_steps=-5)],
  "cosine_with_restarts": [dict(warmup_steps=120), dict(num_cycles=-2.0)],
  "cooldown": [dict(length=-5), dict(start=-0.5)],
  "noisy": [dict(seed=0.5), dict(seed=2.0**31), dict(noise_range=[50, 10]), dict(noise_std=-1.0)],
  "swalr": [dict(anneal_epochs=-0.5), dict(swa_start=-3)],
  "cyclic_momentum": [dict(base_momentum=0.99), dict(step_size_up=-1)],
  "cyclic": [
    dict(step_size_down=-1),
    dict(gamma=-0.5),  # gamma > 1 grows (PyTorch allows it) and saturates at the float max
    dict(base_value=2.0),  # above max_value
  ],
  "one_cycle": [
    dict(pct_final=0.2),  # below pct_start
    dict(total_steps=100.5),
    dict(pct_start=0.0),
    dict(pct_start=1.0),
    dict(final_div_factor=0.0),
  ],
  "one_cycle_momentum": [
    dict(total_steps=60.5),
    dict(pct_start=1.0),
    dict(base_momentum=-0.1),
    dict(max_momentum=1.5),
  ],
  "warmup": [dict(mode="exponential", init_value=0.0)],
  "inverse_sqrt": [dict(warmup_steps=-0.5)],
  "warmup_stable_decay": [dict(total_steps=20), dict(warmup_steps=-1), dict(decay_steps=-3)],
  "join": [dict(boundaries=[40, 10])],
  "multiply": [],
  "piecewise_constant": [dict(boundaries=[10, 5])],
  "piecewise_interpolate": [
    dict(boundaries=[-1, 30, 60]),
    dict(boundaries=[10, 60, 30]),
    dict(scales=[2.0, 0.1, -0.5]),
    dict(init_value=1e30, scales=[1e10, 0.1, 0.5]),
  ],
  "add": [],
  "per_epoch": [dict(steps_per_epoch=2.5), dict(steps_per_epoch=-7)],
  "linear_lr": [dict(start_factor=1.5), dict(end_factor=-0.1), dict(total_iters=2.5)],
  "constant_lr": [dict(factor=-0.1), dict(total_iters=2.5)],
}


def build(ctor, kwargs):
  """Calls a constructor; ``multiply`` and ``add`` take their schedules positionally."""
  kw = dict(kwargs)
  if "schedules" in kw and ctor.__name__ in ("multiply", "add"):
    return ctor(*kw.pop("schedules"), **kw)
  return ctor(**kw)


@functools.partial(jax.jit, static_argnames=("mode", "threshold_mode"))
def plateau_scan_scales(
  values,
  factor=0.1,
  patience=10,
  threshold=1e-4,
  cooldown=0,
  min_scale=0.0,
  accumulation_steps=1,
  *,
  mode="min",
  threshold_mode="rel",
):
  """``reduce_on_plateau``'s ``state.scale`` after each of ``values``, as one ``lax.scan`` under jit.

  Every numeric hyperparameter may be traced (pass them all as float32 arrays to share one compile).
  """
  tx = reduce_on_plateau(
    factor=factor,
    patience=patience,
    threshold=threshold,
    threshold_mode=threshold_mode,
    cooldown=cooldown,
    min_scale=min_scale,
    mode=mode,
    accumulation_steps=accumulation_steps,
  )

  def body(state, v):
    _, state = tx.update({"w": jnp.zeros(())}, state, value=v)
    return state, state.scale

  return jax.lax.scan(body, tx.init({"w": jnp.zeros(())}), values)[1]
