"""lr_jax: the learning-rate toolkit for JAX.

* ``lr_jax.schedules``: every classic and modern schedule as a pure ``step -> rate`` value.
* ``lr_jax.optimizers``: SGD, Adagrad, RMSprop, Adam, AdamW with PyTorch's numerics, and
  ``reduce_on_plateau``, as Optax ``GradientTransformation``s.
* ``lr_jax.lr_find``: the LR range test; ``lr_jax.sweep``: train a grid of configurations at once;
  ``lr_jax.search``: random search, successive halving and PBT over ``lr_jax.spaces``, in one program.
* ``lr_jax.hypergradient``: the held-out loss after training and its gradient with respect to the
  hyperparameters; ``lr_jax.tune``: Adam on the hyperparameters with it.
* ``lr_jax.plot`` (``from lr_jax import plot``): matplotlib figures, imported on first use.

Modules behind this flat API are private (``lr_jax._sweep``, ``lr_jax.schedules._decay``, ...), so
every public name has exactly one path and no function shadows its module.
"""

from importlib import metadata as _metadata

from lr_jax import optimizers, schedules, spaces
from lr_jax._finder import LRFindGrid, LRFindResult, lr_find, lr_find_grid
from lr_jax._hypergrad import HypergradResult, hypergradient
from lr_jax._search import SearchResult, search
from lr_jax._sweep import SweepResult, sweep
from lr_jax._tune import TuneResult, tune

try:
  __version__ = _metadata.version("lr-jax")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
  __version__ = "0+unknown"

__all__ = [
  "HypergradResult",
  "LRFindGrid",
  "LRFindResult",
  "SearchResult",
  "SweepResult",
  "TuneResult",
  "__version__",
  "hypergradient",
  "lr_find",
  "lr_find_grid",
  "optimizers",
  "schedules",
  "search",
  "spaces",
  "sweep",
  "tune",
]
