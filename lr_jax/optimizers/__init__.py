"""Optimizers with PyTorch's numerics, as Optax ``GradientTransformation``s."""

import importlib as _importlib

from lr_jax.optimizers.adagrad import *  # noqa: F401,F403
from lr_jax.optimizers.adam import *  # noqa: F401,F403
from lr_jax.optimizers.plateau import *  # noqa: F401,F403
from lr_jax.optimizers.rmsprop import *  # noqa: F401,F403
from lr_jax.optimizers.sgd import *  # noqa: F401,F403
from lr_jax.optimizers.step import *  # noqa: F401,F403

# The functions sgd, adagrad, rmsprop and adam shadow their modules' names on this package, so the
# modules are looked up by their full names.
__all__ = [
  name
  for module in ("sgd", "adagrad", "rmsprop", "adam", "plateau", "step")
  for name in _importlib.import_module(f"lr_jax.optimizers.{module}").__all__
]
del _importlib

from lr_jax.optimizers.finite import *  # noqa: E402,F401,F403

__all__ += ["SkipNonfiniteState", "skip_nonfinite"]
