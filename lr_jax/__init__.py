"""lr_jax: the learning-rate toolkit for JAX.

* ``lr_jax.schedules``: every classic and modern schedule as a pure ``step -> rate`` value.
* ``lr_jax.optimizers``: SGD, Adagrad, RMSprop, Adam, AdamW with PyTorch's numerics, and
  ``reduce_on_plateau``, as Optax ``GradientTransformation``s.
* ``lr_jax.lr_find``: the LR range test; ``lr_jax.sweep``: train a grid of configurations at once.
"""

from lr_jax import optimizers, schedules

__version__ = "0.1.0"
__all__ = ["schedules", "optimizers", "__version__"]
