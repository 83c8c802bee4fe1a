"""Learning-rate schedules: pure ``step -> rate`` values (frozen, pytree-registered dataclasses).

Every schedule accepts a scalar or an array of steps, can be built with traced hyperparameters
inside ``jax.jit`` / ``jax.vmap``, and round-trips through ``to_config()`` / ``from_config()``.
"""

from lr_jax.schedules._base import Schedule, from_config
from lr_jax.schedules.compose import *  # noqa: F401,F403
from lr_jax.schedules.cosine import *  # noqa: F401,F403
from lr_jax.schedules.cyclic import *  # noqa: F401,F403
from lr_jax.schedules.decay import *  # noqa: F401,F403
from lr_jax.schedules.one_cycle import *  # noqa: F401,F403
from lr_jax.schedules.warmup import *  # noqa: F401,F403
from lr_jax.schedules import compose, cosine, cyclic, decay, one_cycle, warmup  # noqa: E402

__all__ = ["Schedule", "from_config"] + [
  n for m in (decay, cosine, cyclic, one_cycle, warmup, compose) for n in m.__all__
]
del compose, cosine, cyclic, decay, one_cycle, warmup
