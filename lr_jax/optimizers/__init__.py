"""Optimizers with PyTorch's numerics, as Optax ``GradientTransformation``s.

Each optimizer is ``optax.chain(scale_by_<name>(...), <learning-rate step>)``; the ``scale_by_*``
building blocks and their ``ScaleBy<Name>State`` NamedTuples are public too. ``reduce_on_plateau``
scales updates by a loss-driven multiplier, ``skip_nonfinite`` skips NaN/inf gradients, and
``update_step`` is the recommended jitted, buffer-donating ``update + apply_updates``.
"""

from lr_jax.optimizers._adagrad import ScaleByAdagradState, adagrad, scale_by_adagrad
from lr_jax.optimizers._adam import ScaleByAdamState, adam, adamw, scale_by_adam
from lr_jax.optimizers._finite import SkipNonfiniteState, skip_nonfinite
from lr_jax.optimizers._plateau import ReduceOnPlateauState, reduce_on_plateau
from lr_jax.optimizers._rmsprop import ScaleByRMSPropState, rmsprop, scale_by_rmsprop
from lr_jax.optimizers._sgd import ScaleBySGDState, scale_by_sgd, sgd
from lr_jax.optimizers._step import update_step

__all__ = [
  "sgd",
  "adagrad",
  "rmsprop",
  "adam",
  "adamw",
  "scale_by_sgd",
  "scale_by_adagrad",
  "scale_by_rmsprop",
  "scale_by_adam",
  "ScaleBySGDState",
  "ScaleByAdagradState",
  "ScaleByRMSPropState",
  "ScaleByAdamState",
  "reduce_on_plateau",
  "ReduceOnPlateauState",
  "skip_nonfinite",
  "SkipNonfiniteState",
  "update_step",
]
