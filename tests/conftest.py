import os

os.environ.setdefault("MPLBACKEND", "Agg")
# `make test` runs one xdist worker per core: one compute thread per worker. XLA's Eigen pool and
# PyTorch's OpenMP pool would each start a thread per core in every worker and oversubscribe the
# cores (the suite took 7:35-7:43 with them, 7:03 without, on 2 cores). Read before JAX's CPU backend
# starts; a user's own setting is kept.
if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402
import matplotlib  # noqa: E402
from hypothesis import settings  # noqa: E402

matplotlib.use("Agg")
jax.config.update("jax_numpy_rank_promotion", "raise")
# Float32 matrix products in full precision, as NumPy and PyTorch compute them. It changes nothing on a
# CPU; on a GPU, JAX's default is TF32-like (about 1e-3 relative), which failed 7 parity tests on an H200.
jax.config.update("jax_default_matmul_precision", "highest")
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci")

if not hasattr(jax, "enable_x64"):  # jax < 0.8 (the floor is 0.6.1): the same scoped switch, older name
  from jax.experimental import enable_x64 as _enable_x64

  jax.enable_x64 = _enable_x64


# The longest test files first: pytest-xdist (`--dist loadfile`) hands out whole files in collection
# order, so a long file collected last keeps one worker busy after the other has run out of work.
_LONGEST_FIRST = (
  "test_schedules_generic.py",
  "test_bench_smoke.py",
  "test_readme.py",
  "test_torch_recipes.py",
  "test_precision.py",
  "test_distributed.py",
  "test_resume.py",
  "test_sharding.py",
  "test_optimizers.py",
  "test_schedules_cosine.py",
  "test_schedules_validation.py",
  "test_sweep_models.py",
  "test_examples.py",
)


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
