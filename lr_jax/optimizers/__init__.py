"""Optimizers with PyTorch's numerics, as Optax ``GradientTransformation``s.

Each optimizer is ``optax.chain(scale_by_<name>(...), <learning-rate step>)``; the ``scale_by_*``
building blocks and their ``ScaleBy<Name>State`` NamedTuples are public too. ``reduce_on_plateau``
scales updates by a loss-driven multiplier (``plateau_step`` advances it once per epoch),
``current_lr`` reads the rate of the next update from a state, ``clip_grad_norm`` / ``clip_grad_value``
clip with PyTorch's numerics, ``skip_nonfinite`` skips NaN/inf gradients, and
``update_step`` is the recommended jitted, buffer-donating ``update + apply_updates``.
"""

from lr_jax.optimizers._adagrad import ScaleByAdagradState, adagrad, scale_by_adagrad
from lr_jax.optimizers._adam import ScaleByAdamState, adam, adamw, scale_by_adam
from lr_jax.optimizers._clip import ClipGradNormState, clip_grad_norm, clip_grad_value
from lr_jax.optimizers._dadapt import (
  DAdaptAdagradState,
  DAdaptAdamState,
  DAdaptSGDState,
  dadapt_adagrad,
  dadapt_adam,
  dadapt_sgd,
)
from lr_jax.optimizers._dog import DoGState, PolynomialDecayAverageState, dog, ldog, polynomial_decay_average
from lr_jax.optimizers._finite import SkipNonfiniteState, skip_nonfinite
from lr_jax.optimizers._groups import param_groups, param_path
from lr_jax.optimizers._hypergradient import (
  HypergradientAdamState,
  HypergradientSGDState,
  hypergradient_adam,
  hypergradient_sgd,
)
from lr_jax.optimizers._plateau import ReduceOnPlateauState, plateau_step, reduce_on_plateau
from lr_jax.optimizers._prodigy import ProdigyState, prodigy
from lr_jax.optimizers._rmsprop import ScaleByRMSPropState, rmsprop, scale_by_rmsprop
from lr_jax.optimizers._schedule_free import (
  ScheduleFreeState,
  schedule_free_adamw,
  schedule_free_eval_params,
  schedule_free_radam,
  schedule_free_sgd,
  schedule_free_train_params,
)
from lr_jax.optimizers._sgd import ScaleBySGDState, scale_by_sgd, sgd
from lr_jax.optimizers._state import ScaleByLearningRateState, current_lr
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
  "plateau_step",
  "current_lr",
  "ScaleByLearningRateState",
  "clip_grad_norm",
  "clip_grad_value",
  "ClipGradNormState",
  "skip_nonfinite",
  "SkipNonfiniteState",
  "update_step",
  "param_groups",
  "param_path",
  "schedule_free_sgd",
  "schedule_free_adamw",
  "schedule_free_radam",
  "schedule_free_eval_params",
  "schedule_free_train_params",
  "ScheduleFreeState",
  "prodigy",
  "ProdigyState",
  "dadapt_adam",
  "dadapt_sgd",
  "dadapt_adagrad",
  "DAdaptAdamState",
  "DAdaptSGDState",
  "DAdaptAdagradState",
  "dog",
  "ldog",
  "DoGState",
  "polynomial_decay_average",
  "PolynomialDecayAverageState",
  "hypergradient_sgd",
  "hypergradient_adam",
  "HypergradientSGDState",
  "HypergradientAdamState",
]
