import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import matplotlib  # noqa: E402
from hypothesis import settings  # noqa: E402

matplotlib.use("Agg")
jax.config.update("jax_numpy_rank_promotion", "raise")
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci")
