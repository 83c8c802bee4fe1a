"""When you would rather not pick a learning rate: schedule-free and LR-free optimizers on the digits MLP.

Schedule-free methods (Defazio et al. 2024) keep the learning rate constant after a warm-up and
replace the decaying schedule by an average. Three sequences: ``z`` takes plain SGD/Adam steps,
the evaluation point ``x`` is a running weighted average of the ``z``, and gradients are taken at
``y = (1 - b1) z + b1 x``, which is what the training loop holds as its parameters::

    z <- z - lr_t * g(y)
    x <- (1 - c) x + c z,    c = w_t / sum(w),   w_t = t**r * max(lr_1..lr_t)**weight_lr_power
    y  = (1 - b1) z + b1 x

So what they estimate is not a step size (``learning_rate`` is still yours) but the average a decaying
schedule would have approximated; evaluate ``x`` (``optimizers.schedule_free_eval_params``), not the
training parameters ``y``. Learning-rate-free methods estimate the step size itself: Prodigy and
D-Adapt Adam an Adam rate ``d`` (from how far the parameters have moved against the gradients
accumulated so far), DoG an SGD rate ``eta = max distance from x0 / sqrt(sum |g|^2)``.

This script trains the digits MLP (64-32-10) with each of ``schedule_free_sgd/adamw/radam`` at the
reference package's default learning rates (plus a warm-up of 5% of the run for SGD and AdamW), AdamW
with warm-up and cosine decay at PyTorch's default rate, and ``prodigy``, ``dadapt_adam`` and ``dog``
(evaluated at its polynomial-decay average) at their defaults, then calibrates each one's main knob
(the rate; Prodigy's ``d_coef``) on a 16-point grid (one vmapped run per value), all in one compiled
program, and prints the held-out loss at ``x`` (the value is picked on that same held-out set: this is
a calibration, not a test score), ``y`` against ``x`` for AdamW, the rates ``lr_jax.lr_find`` suggests
for Adam and SGD, and the step sizes the LR-free methods estimated after updates 1, 10, 50 and the last.

Run: python examples/lr_free.py --steps 400 [--figure lr_free.png]
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lr_jax
from lr_jax import optimizers, schedules, tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _cli (also under runpy)
from _cli import parse_args

BATCH = 64


FACTORS = 10.0 ** np.arange(-1.5, 2.5, 0.25)  # the 16-point calibration grid: the default rate times these
DEFAULT = 6  # FACTORS[6] == 1: the default rate is one lane of the grid


def methods(steps: int) -> dict:
  """name -> (knob value -> optimizer, the knob's name, its published default, how to evaluate, estimate).

  schedulefree 1.4's defaults, with a warm-up of 5% of the run for SGD and AdamW; AdamW with warm-up
  and cosine decay at PyTorch's default rate as the scheduled baseline; prodigyopt 1.1, dadaptation 3.2
  and dog-optimizer 1.0 at their defaults (DoG with the authors' polynomial-decay average of the
  iterates). "how to evaluate" maps (params, state) to the evaluation point x; "estimate" maps the
  state to the step size it estimated (None: the method estimates none).
  """
  warmup = max(steps // 20, 1)
  cosine = lambda lr: schedules.warmup(schedules.cosine_annealing(lr, max(steps - warmup, 1)), warmup)
  sf, plain = optimizers.schedule_free_eval_params, lambda p, s: p
  dog = lambda lr: optax.chain(optimizers.dog(lr), optimizers.polynomial_decay_average())
  return {
    "adamw + warm-up + cosine": (
      lambda lr: optimizers.adamw(cosine(lr), weight_decay=0.0),
      "lr",
      1e-3,
      plain,
      None,
    ),
    "schedule_free_adamw": (
      lambda lr: optimizers.schedule_free_adamw(lr, warmup_steps=warmup),
      "lr",
      0.0025,
      sf,
      None,
    ),
    "schedule_free_radam": (optimizers.schedule_free_radam, "lr", 0.0025, sf, None),
    "schedule_free_sgd": (
      lambda lr: optimizers.schedule_free_sgd(lr, warmup_steps=warmup),
      "lr",
      1.0,
      sf,
      None,
    ),
    "prodigy": (lambda c: optimizers.prodigy(d_coef=c), "d_coef", 1.0, plain, lambda s: s.d),
    "dadapt_adam": (optimizers.dadapt_adam, "lr", 1.0, plain, lambda s: s.d),
    "dog + averaging": (dog, "lr", 1.0, lambda p, s: s[-1].average, lambda s: s[0].eta),
  }


def train(steps: int):
  """{name: (curves at the default, final held-out losses of x over default * FACTORS)}, and the rates
  ``lr_jax.lr_find`` suggests for Adam and for SGD on the same problem.

  The curves are the held-out loss of y, of x, the held-out accuracy of y and of x, and the estimated
  step size after every update (zeros where the method estimates none); the calibration trains one
  run per knob value of ``default * FACTORS``, vmapped.
  """
  task = tasks.make("digits", batch_size=BATCH)
  data = tasks.digits_data()
  test = (jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"]))
  n = task.batches[0].shape[0]

  def evaluate(p):
    return tasks.mlp_loss(p, test), tasks.mlp_accuracy(p, *test)

  def run(make, value, at_x, estimate):
    tx = make(value)

    def body(carry, t):
      params, state = carry
      grads = jax.grad(task.loss_fn)(params, jax.tree.map(lambda b: b[t % n], task.batches))
      updates, state = tx.update(grads, state, params)
      params = jax.tree.map(lambda p, u: p + u, params, updates)
      step = jnp.zeros([]) if estimate is None else estimate(state)
      return (params, state), (*evaluate(params), *evaluate(at_x(params, state)), step)

    _, (loss_y, acc_y, loss_x, acc_x, step) = jax.lax.scan(
      body, (task.params, tx.init(task.params)), jnp.arange(steps)
    )
    return loss_y, loss_x, acc_y, acc_x, step

  @jax.jit
  def everything(factors):
    runs = {}
    for name, (make, _, default, at_x, estimate) in methods(steps).items():
      runs[name] = jax.vmap(lambda f, m=make, d=default, x=at_x, e=estimate: run(m, d * f, x, e))(factors)
    return runs

  factors = jnp.asarray(FACTORS, jnp.float32).at[DEFAULT].set(1.0)  # exactly the default
  out = jax.device_get(everything(factors))
  results = {k: (tuple(a[DEFAULT] for a in out[k]), out[k][1][:, -1]) for k in methods(steps)}
  suggested = {
    name: lr_jax.lr_find(task.loss_fn, task.params, task.batches, optimizer=make, num_steps=100).suggestion
    for name, make in (("adam", optimizers.adam), ("sgd", optimizers.sgd))
  }
  return results, suggested


def main(argv=None):
  args = parse_args(argv, __file__, __doc__, steps=400)
  results, suggested = train(args.steps)
  print(f"digits MLP (64-32-10), batches of {BATCH}, {args.steps} updates; held-out loss at x (accuracy)")
  print(f"{'optimizer':<26}{'knob':>7}{'default':>9}{'at default':>17}{'best of 16':>12}{'at best':>9}")
  for name, ((loss_y, loss_x, acc_y, acc_x, _), sweep) in results.items():
    _, knob, default, _, _ = methods(args.steps)[name]
    best = int(np.nanargmin(sweep))
    at_default = f"{loss_x[-1]:.4f} ({acc_x[-1]:.3f})"
    edge = "*" if best in (0, len(FACTORS) - 1) else " "  # * : at the edge of the grid
    print(
      f"{name:<26}{knob:>7}{default:>9g}{at_default:>17}{default * FACTORS[best]:>11.3g}{edge}{sweep[best]:>9.4f}"
    )
  sf = results["schedule_free_adamw"][0]
  print(
    f"schedule_free_adamw at its default: y {sf[0][-1]:.4f} ({sf[2][-1]:.3f}), x {sf[1][-1]:.4f} ({sf[3][-1]:.3f})"
  )
  print("(* the best value is at the edge of the grid: default / 31.6 .. default * 178)")
  print(
    f"lr_find suggests {suggested['adam']:.3g} for Adam, {suggested['sgd']:.3g} for SGD; estimated step size"
  )
  marks = sorted({t for t in (0, 9, 49) if t < args.steps} | {args.steps - 1})  # updates 1, 10, 50, last
  print("  after update " + "".join(f"{t + 1:>9}" for t in marks))
  for name in ("prodigy", "dadapt_adam", "dog + averaging"):
    est = results[name][0][4]
    print(f"  {name:<15}" + "".join(f"{est[t]:>9.3g}" for t in marks))
  if args.figure:
    _figure({k: v[0] for k, v in results.items()}, suggested, args.figure)
  return 0


def _figure(curves, suggested, path):
  import matplotlib.pyplot as plt

  fig, (ax, bx) = plt.subplots(2, 1, figsize=(8, 7), layout="constrained")
  for i, (name, (loss_y, loss_x, _, _, step)) in enumerate(curves.items()):
    color = f"C{i}"
    t = np.arange(1, len(loss_y) + 1)
    if name.startswith(("schedule_free", "dog")):
      ax.plot(t, loss_y, color=color, alpha=0.35, lw=1)
      ax.plot(t, loss_x, color=color, lw=1.5, label=f"{name}: averaged point (faint: gradient point)")
    else:
      ax.plot(t, loss_y, color=color, lw=1.5, label=name)
    if name in ("prodigy", "dadapt_adam", "dog + averaging"):
      label = f"{name}: {'eta' if name.startswith('dog') else 'd'}"
      bx.plot(t, step, color=color, lw=1.5, label=label)
  ax.set_yscale("log")
  ax.set_xlabel("update")
  ax.set_ylabel("held-out cross-entropy")
  ax.set_title("digits MLP, published defaults: held-out loss")
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  bx.axhline(suggested["adam"], color="k", lw=1, label=f"lr_find for Adam: {suggested['adam']:.3g}")
  bx.axhline(suggested["sgd"], color="k", lw=1, ls="--", label=f"lr_find for SGD: {suggested['sgd']:.3g}")
  bx.set_yscale("log")
  bx.set_xlabel("update")
  bx.set_ylabel("estimated step size")
  bx.set_title("estimated step size against the range test's suggestion")
  bx.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  raise SystemExit(main())
