"""Learning-rate schedules: pure ``step -> rate`` values (frozen, pytree-registered dataclasses).

Every schedule accepts a scalar or an array of steps, can be built with traced hyperparameters
inside ``jax.jit`` / ``jax.vmap``, and round-trips through ``to_config()`` / ``from_config()``. Schedules combine with ``+ - * /`` (with
numbers or other schedules) into schedule values.
"""

from lr_jax.schedules._base import Schedule, from_config
from lr_jax.schedules._compose import add, join, multiply, per_epoch
from lr_jax.schedules._cooldown import cooldown
from lr_jax.schedules._cosine import (
  cosine_annealing,
  cosine_warm_restarts,
  cosine_with_min_lr,
  cosine_with_restarts,
)
from lr_jax.schedules._cyclic import cyclic, cyclic_momentum
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
from lr_jax.schedules._factor import constant_lr, linear_lr
from lr_jax.schedules._interpolate import piecewise_interpolate
from lr_jax.schedules._noise import noisy
from lr_jax.schedules._one_cycle import one_cycle, one_cycle_momentum
from lr_jax.schedules._swa import swalr
from lr_jax.schedules._warmup import inverse_sqrt, warmup, warmup_stable_decay

__all__ = [
  "Schedule",
  "add",
  "constant",
  "constant_lr",
  "cooldown",
  "cosine_annealing",
  "cosine_warm_restarts",
  "cosine_with_min_lr",
  "cosine_with_restarts",
  "cyclic",
  "cyclic_momentum",
  "exponential_decay",
  "from_config",
  "inverse_sqrt",
  "inverse_time_decay",
  "join",
  "linear",
  "linear_lr",
  "multiply",
  "multistep_decay",
  "noisy",
  "one_cycle",
  "one_cycle_momentum",
  "per_epoch",
  "piecewise_constant",
  "piecewise_interpolate",
  "polynomial_decay",
  "step_decay",
  "swalr",
  "warmup",
  "warmup_stable_decay",
]
