"""Learning-rate schedules: pure ``step -> rate`` values (frozen, pytree-registered dataclasses).

Every schedule accepts a scalar or an array of steps, can be built with traced hyperparameters
inside ``jax.jit`` / ``jax.vmap``, and round-trips through ``to_config()`` / ``from_config()``.
"""

from lr_jax.schedules._base import Schedule, from_config
from lr_jax.schedules._compose import join, multiply
from lr_jax.schedules._cosine import cosine_annealing, cosine_warm_restarts
from lr_jax.schedules._cyclic import cyclic
from lr_jax.schedules._decay import (
  constant,
  exponential_decay,
  inverse_time_decay,
  linear,
  multistep_decay,
  piecewise_constant,
  polynomial_decay,
  step_decay,
)
from lr_jax.schedules._one_cycle import one_cycle, one_cycle_momentum
from lr_jax.schedules._warmup import inverse_sqrt, warmup, warmup_stable_decay

__all__ = [
  "Schedule",
  "from_config",
  "constant",
  "step_decay",
  "multistep_decay",
  "exponential_decay",
  "inverse_time_decay",
  "polynomial_decay",
  "linear",
  "cosine_annealing",
  "cosine_warm_restarts",
  "cyclic",
  "one_cycle",
  "one_cycle_momentum",
  "warmup",
  "inverse_sqrt",
  "warmup_stable_decay",
  "join",
  "multiply",
  "piecewise_constant",
]
