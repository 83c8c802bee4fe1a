"""When you would rather not pick a learning rate: schedule-free optimizers on the digits MLP.

Schedule-free methods (Defazio et al. 2024) keep the learning rate constant after a warm-up and
replace the decaying schedule by an average. Three sequences: ``z`` takes plain SGD/Adam steps,
the evaluation point ``x`` is a running weighted average of the ``z``, and gradients are taken at
``y = (1 - b1) z + b1 x``, which is what the training loop holds as its parameters::

    z <- z - lr_t * g(y)
    x <- (1 - c) x + c z,    c = w_t / sum(w),   w_t = t**r * max(lr_1..lr_t)**weight_lr_power
    y  = (1 - b1) z + b1 x

So what they estimate is not a step size (``learning_rate`` is still yours) but the average a decaying
schedule would have approximated; evaluate ``x`` (``optimizers.schedule_free_eval_params``), not the
training parameters ``y``. This script trains the digits MLP (64-32-10) with each of
``schedule_free_sgd/adamw/radam`` at the reference package's default learning rates (plus a warm-up
of 5% of the run for SGD and AdamW) and AdamW with warm-up and cosine decay at PyTorch's default rate,
then calibrates each one's learning rate on a 16-point grid (one vmapped run per rate), all in one
compiled program, and prints the held-out loss at ``x`` (the rate is picked on that same held-out
set: this is a calibration, not a test score), and ``y`` against ``x`` for AdamW.

Run: python examples/lr_free.py --steps 400 [--figure lr_free.png]
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args

BATCH = 64


FACTORS = 10.0 ** np.arange(-1.5, 2.5, 0.25)  # the 16-point calibration grid: the default rate times these
DEFAULT = 6  # FACTORS[6] == 1: the default rate is one lane of the grid


def methods(steps: int) -> dict:
  """name -> (learning rate -> optimizer, the reference's default rate, has eval params).

  schedulefree 1.4's defaults, with a warm-up of 5% of the run for SGD and AdamW; AdamW with warm-up
  and cosine decay at PyTorch's default rate as the scheduled baseline.
  """
  warmup = max(steps // 20, 1)
  cosine = lambda lr: schedules.warmup(schedules.cosine_annealing(lr, max(steps - warmup, 1)), warmup)
  return {
    "schedule_free_sgd": (lambda lr: optimizers.schedule_free_sgd(lr, warmup_steps=warmup), 1.0, True),
    "schedule_free_adamw": (lambda lr: optimizers.schedule_free_adamw(lr, warmup_steps=warmup), 0.0025, True),
    "schedule_free_radam": (optimizers.schedule_free_radam, 0.0025, True),
    "adamw + warm-up + cosine": (lambda lr: optimizers.adamw(cosine(lr), weight_decay=0.0), 1e-3, False),
  }


def train(steps: int):
  """{name: (curves at the default rate, final held-out losses of x over default * FACTORS)}.

  The curves are the held-out loss of y, of x, and the held-out accuracy of y and of x after every
  update; the calibration trains one run per rate of ``default * FACTORS``, vmapped.
  """
  task = tasks.make("digits", batch_size=BATCH)
  data = tasks.digits_data()
  test = (jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"]))
  n = task.batches[0].shape[0]

  def evaluate(p):
    return tasks.mlp_loss(p, test), tasks.mlp_accuracy(p, *test)

  def run(make, lr, has_eval):
    tx = make(lr)

    def body(carry, t):
      params, state = carry
      grads = jax.grad(task.loss_fn)(params, jax.tree.map(lambda b: b[t % n], task.batches))
      updates, state = tx.update(grads, state, params)
      params = jax.tree.map(lambda p, u: p + u, params, updates)
      x = optimizers.schedule_free_eval_params(params, state) if has_eval else params
      return (params, state), (*evaluate(params), *evaluate(x))

    _, (loss_y, acc_y, loss_x, acc_x) = jax.lax.scan(
      body, (task.params, tx.init(task.params)), jnp.arange(steps)
    )
    return loss_y, loss_x, acc_y, acc_x

  @jax.jit
  def everything(factors):
    runs = {}
    for name, (make, default, has_eval) in methods(steps).items():
      runs[name] = jax.vmap(lambda f, m=make, d=default, e=has_eval: run(m, d * f, e))(factors)
    return runs

  factors = jnp.asarray(FACTORS, jnp.float32).at[DEFAULT].set(1.0)  # exactly the default
  out = jax.device_get(everything(factors))
  return {k: (tuple(a[DEFAULT] for a in curves), curves[1][:, -1]) for k, curves in out.items()}


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=400)
  results = train(args.steps)
  print(f"digits MLP (64-32-10), batches of {BATCH}, {args.steps} updates; held-out loss at x (accuracy)")
  print(f"{'optimizer':<26}{'default lr':>11}{'at default':>17}{'best of 16 lr':>14}{'at best':>9}")
  for name, ((loss_y, loss_x, acc_y, acc_x), sweep) in results.items():
    default = methods(args.steps)[name][1]
    best = int(np.nanargmin(sweep))
    at_default = f"{loss_x[-1]:.4f} ({acc_x[-1]:.3f})"
    edge = "*" if best in (0, len(FACTORS) - 1) else " "  # * : at the edge of the grid
    print(
      f"{name:<26}{default:>11g}{at_default:>17}{default * FACTORS[best]:>13.3g}{edge}{sweep[best]:>9.4f}"
    )
  sf = results["schedule_free_adamw"][0]
  print(
    f"schedule_free_adamw at its default: y {sf[0][-1]:.4f} ({sf[2][-1]:.3f}), x {sf[1][-1]:.4f} ({sf[3][-1]:.3f})"
  )
  print("(* the best rate is at the edge of the grid: default / 31.6 .. default * 178)")
  if args.figure:
    _figure({k: v[0] for k, v in results.items()}, args.figure)
  return 0


def _figure(curves, path):
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
  for i, (name, (loss_y, loss_x, _, _)) in enumerate(curves.items()):
    color = f"C{i}"
    t = np.arange(1, len(loss_y) + 1)
    if name.startswith("schedule_free"):
      ax.plot(t, loss_y, color=color, alpha=0.35, lw=1)
      ax.plot(t, loss_x, color=color, lw=1.5, label=f"{name}: x (light: y)")
    else:
      ax.plot(t, loss_y, color=color, lw=1.5, label=name)
  ax.set_yscale("log")
  ax.set_xlabel("update")
  ax.set_ylabel("held-out cross-entropy")
  ax.set_title("digits MLP: schedule-free evaluation point x against training point y")
  ax.legend(fontsize=8, loc="upper right")
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  raise SystemExit(main())
