"""One worker of the shared-storage test in ``tests/test_optuna.py``.

``python tests/_optuna_worker.py STORAGE STUDY NUM_SAMPLES BATCH_SIZE OUT.json`` loads the Optuna
study ``STUDY`` from ``STORAGE`` (an RDB URL such as ``sqlite:///path.db``, or ``journal:PATH`` for a
``JournalStorage`` on a file), evaluates ``NUM_SAMPLES`` trials of the tiny problem of :func:`problem`
with ``lr_jax``'s Optuna bridge, ``BATCH_SIZE`` at a time, and writes the trial numbers it told, with
their scores and steps, to ``OUT.json``. Imported, :func:`problem` is the test's own problem.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def problem():
  """A least-squares line fit: ``(loss_fn, params, batches, eval_fn, optimizer, space)``."""
  import jax.numpy as jnp
  import optax
  import optuna

  from lr_jax import spaces

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 8)).astype(np.float32)
  y = (3.0 * x + 2.0 + 0.1 * rng.normal(size=(4, 8))).astype(np.float32)
  xt = np.linspace(0.0, 1.0, 16, dtype=np.float32)
  yt = 3.0 * xt + 2.0

  def loss_fn(p, batch):
    return jnp.mean((p["m"] * batch[0] + p["b"] - batch[1]) ** 2)

  def eval_fn(p):
    return jnp.mean((p["m"] * xt + p["b"] - yt) ** 2)

  params = {"m": jnp.zeros(()), "b": jnp.zeros(())}
  space = {
    "lr": optuna.distributions.FloatDistribution(1e-3, 0.5, log=True),
    "momentum": spaces.categorical([0.0, 0.9]),
  }
  return loss_fn, params, (x, y), eval_fn, (lambda h: optax.sgd(h["lr"], momentum=h["momentum"])), space


def storage(spec: str):
  import optuna

  if spec.startswith("journal:"):
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(spec[len("journal:") :]))
  return optuna.storages.RDBStorage(spec, engine_kwargs={"connect_args": {"timeout": 60}})


def main(argv):
  import optuna

  import lr_jax

  spec, name, num_samples, batch_size, out = argv
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  study = optuna.load_study(study_name=name, storage=storage(spec))
  loss_fn, params, batches, eval_fn, optimizer, space = problem()
  res = lr_jax.search(
    loss_fn, params, batches, optimizer=optimizer, space=space, num_steps=20, method="optuna", study=study,
    num_samples=int(num_samples), batch_size=int(batch_size), eval_fn=eval_fn, eval_mode="min", eval_every=5,
  )  # fmt: skip
  with open(out, "w") as f:
    json.dump(
      {"numbers": res.trial_numbers.tolist(), "scores": res.score.tolist(), "steps": res.steps.tolist()}, f
    )


if __name__ == "__main__":
  main(sys.argv[1:])
