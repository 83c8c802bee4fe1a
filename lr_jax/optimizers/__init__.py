"""Optimizers with PyTorch's numerics, as Optax ``GradientTransformation``s."""

from lr_jax.optimizers.plateau import *  # noqa: F401,F403
from lr_jax.optimizers.step import *  # noqa: F401,F403
from lr_jax.optimizers import plateau, step  # noqa: E402

__all__ = [*plateau.__all__, *step.__all__]
del plateau, step
