"""lr_jax: the learning-rate toolkit for JAX.

* ``lr_jax.schedules``: every classic and modern schedule as a pure ``step -> rate`` value.
* ``lr_jax.optimizers``: SGD, Adagrad, RMSprop, Adam, AdamW with PyTorch's numerics, and
  ``reduce_on_plateau``, as Optax ``GradientTransformation``s.
* ``lr_jax.lr_find``: the LR range test; ``lr_jax.sweep``: train a grid of configurations at once.
* ``lr_jax.plot`` (``from lr_jax import plot``): matplotlib figures, imported on first use.

The module ``lr_jax/sweep.py`` and the function ``lr_jax.sweep`` share a name: importing the
function below rebinds the package attribute ``lr_jax.sweep`` to the function, which is the one
public path. ``SweepResult`` is reached with ``from lr_jax.sweep import SweepResult`` (a
``from``-import reads the module from ``sys.modules``; ``import lr_jax.sweep as m`` would give the
function).
"""

from lr_jax import optimizers, schedules
from lr_jax.finder import lr_find
from lr_jax.sweep import sweep

__version__ = "0.1.0"
__all__ = ["__version__", "lr_find", "optimizers", "schedules", "sweep"]
