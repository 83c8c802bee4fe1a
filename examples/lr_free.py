"""When you would rather not pick a learning rate: schedule-free and LR-free optimizers on two tasks.

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

This script trains two tasks: the digits MLP (64-32-10, 10-class cross-entropy, batches of 64) and
the diabetes regression MLP (10-32-1, MSE on standardised targets, 342 training patients in batches
of 32: small and noisy, so a run that steps too far overfits). On each, it runs
``schedule_free_sgd/adamw/radam`` at the reference package's default learning rates (plus a warm-up
of 5% of the run for SGD and AdamW), AdamW with warm-up and cosine decay at PyTorch's default rate,
and ``prodigy``, ``dadapt_adam`` and ``dog`` (evaluated at its polynomial-decay average) at their
defaults, then calibrates each one's main knob (the rate; Prodigy's ``d_coef``) on a 16-point grid
(one vmapped run per value), all in one compiled program per task, and prints the held-out loss at
``x`` (the value is picked on that same held-out set: this is a calibration, not a test score), ``y``
against ``x`` for AdamW, the rates ``lr_jax.lr_find`` suggests for Adam and SGD, and the step sizes
the LR-free methods estimated after updates 1, 10, 50 and the last.

Run: python examples/lr_free.py --steps 400 [--figure lr_free.png] [--json lr_free.json]
(``--figure F`` writes the digits figure to F and the diabetes one beside it, ``F_diabetes.png``;
``--json`` writes the printed lines and the numbers behind them, which the tests compare with the
READMEs.)
"""

import json
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


TASKS = {
  # name -> (build the task, its data (held-out split: x_test, y_test), mini-batch size, title, what the loss is)
  "digits": (
    lambda: tasks.make("digits", batch_size=BATCH),
    tasks.digits_data,
    BATCH,
    "digits MLP (64-32-10)",
    "held-out cross-entropy",
  ),
  "diabetes": (
    lambda: tasks.make_diabetes(batch_size=32),
    tasks.diabetes_data,
    32,
    "diabetes regression MLP (10-32-1)",
    "held-out MSE (targets standardised)",
  ),
}


def train(steps: int, task_name: str = "digits"):
  """{name: (curves at the default, final held-out losses of x over default * FACTORS)}, and the rates
  ``lr_jax.lr_find`` suggests for Adam and for SGD on the same problem.

  The curves are the held-out loss of y, of x, the held-out accuracy of y and of x (NaN for the
  regression task), and the estimated step size after every update (zeros where the method estimates
  none); the calibration trains one run per knob value of ``default * FACTORS``, vmapped.
  """
  build, held_out, _, _, _ = TASKS[task_name]
  task = build()
  data = held_out()
  test = (jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"]))
  n = jax.tree.leaves(task.batches)[0].shape[0]

  def evaluate(p):
    if task_name == "digits":
      return tasks.mlp_loss(p, test), tasks.mlp_accuracy(p, *test)
    return task.loss_fn(p, test), jnp.full((), jnp.nan)

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


ESTIMATORS = ("prodigy", "dadapt_adam", "dog + averaging")


def marks(steps: int) -> list[int]:
  """Updates 1, 10, 50 and the last (0-based), where the estimated step sizes are reported."""
  return sorted({t for t in (0, 9, 49) if t < steps} | {steps - 1})


def summarize(results, suggested, steps: int) -> dict:
  """The numbers the script reports, as plain Python (what ``--json`` writes and ``report`` prints)."""
  out = {"methods": {}, "suggested": {k: float(v) for k, v in suggested.items()}}
  for name, ((loss_y, loss_x, acc_y, acc_x, est), sweep) in results.items():
    _, knob, default, _, _ = methods(steps)[name]
    out["methods"][name] = {
      "knob": knob,
      "default": default,
      "x_at_default": [float(loss_x[-1]), float(acc_x[-1])],
      "y_at_default": [float(loss_y[-1]), float(acc_y[-1])],
      "calibration": [float(v) for v in sweep],
      "estimates": [float(est[t]) for t in marks(steps)] if name in ESTIMATORS else None,
    }
  return out


def _at(loss_acc) -> str:
  loss, acc = loss_acc
  return f"{loss:.4f}" if np.isnan(acc) else f"{loss:.4f} ({acc:.3f})"


def report(summaries: dict, steps: int) -> list[str]:
  """The lines the script prints for ``{task: summarize(...)}``: one table per task, then the estimates."""
  lines = []
  for task_name, summary in summaries.items():
    _, _, batch, title, loss = TASKS[task_name]
    extra = " (accuracy)" if task_name == "digits" else ""
    lines.append(f"{title}, batches of {batch}, {steps} updates; {loss} at x{extra}")
    lines.append(
      f"{'optimizer':<26}{'knob':>7}{'default':>9}{'at default':>17}{'best of 16':>12}{'at best':>9}"
    )
    for name, m in summary["methods"].items():
      sweep = np.asarray(m["calibration"])
      best = int(np.nanargmin(sweep))
      edge = "*" if best in (0, len(FACTORS) - 1) else " "  # * : at the edge of the grid
      value = m["default"] * FACTORS[best]
      lines.append(
        f"{name:<26}{m['knob']:>7}{m['default']:>9g}{_at(m['x_at_default']):>17}{value:>11.3g}{edge}"
        f"{sweep[best]:>9.4f}"
      )
    sf = summary["methods"].get("schedule_free_adamw")
    if sf is not None:
      lines.append(
        f"schedule_free_adamw at its default: y {_at(sf['y_at_default'])}, x {_at(sf['x_at_default'])}"
      )
  lines.append("(* the best value is at the edge of the grid: default / 31.6 .. default * 178)")
  for task_name, summary in summaries.items():
    s = summary["suggested"]
    lines.append(
      f"{task_name}: lr_find suggests {s['adam']:.3g} for Adam, {s['sgd']:.3g} for SGD; estimated step size"
    )
    lines.append("  after update " + "".join(f"{t + 1:>9}" for t in marks(steps)))
    for name in (k for k in ESTIMATORS if k in summary["methods"]):
      lines.append(f"  {name:<15}" + "".join(f"{e:>9.3g}" for e in summary["methods"][name]["estimates"]))
  return lines


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv, __file__, __doc__, steps=400, json=True)
  summaries, curves = {}, {}
  for task_name in TASKS:
    results, suggested = train(args.steps, task_name)
    summaries[task_name] = summarize(results, suggested, args.steps)
    curves[task_name] = ({k: v[0] for k, v in results.items()}, suggested)
  lines = report(summaries, args.steps)
  print("\n".join(lines))
  if args.json:
    doc = {"command": f"python examples/lr_free.py --steps {args.steps}", "lines": lines, "tasks": summaries}
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
  if args.figure:
    for task_name, (task_curves, suggested) in curves.items():
      _figure(task_curves, suggested, figure_path(args.figure, task_name), task_name)
  return 0


def figure_path(path: str, task_name: str) -> str:
  """``--figure lr_free.png`` writes the digits figure there and ``lr_free_diabetes.png`` beside it."""
  p = Path(path)
  return str(p if task_name == "digits" else p.with_name(f"{p.stem}_{task_name}{p.suffix}"))


def _figure(curves, suggested, path, task_name):
  import matplotlib.pyplot as plt

  _, _, _, title, loss = TASKS[task_name]
  fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 7.5), layout="constrained")
  for i, (name, (loss_y, loss_x, _, _, step)) in enumerate(curves.items()):
    color = f"C{i}"
    t = np.arange(1, len(loss_y) + 1)
    if name.startswith(("schedule_free", "dog")):
      ax.plot(t, loss_y, color=color, alpha=0.3, lw=1)
      ax.plot(t, loss_x, color=color, lw=1.8, label=f"{name}: averaged point x (faint: gradient point y)")
    else:
      ax.plot(t, loss_y, color=color, lw=1.8, label=name)
    if name in ESTIMATORS:
      label = f"{name}: {'eta' if name.startswith('dog') else 'd'}"
      bx.plot(t, step, color=color, lw=1.8, label=label)
  fig.suptitle(f"{title}, {len(t)} updates, each method at its published defaults")
  ax.set_yscale("log")
  ax.set_xlabel("update")
  ax.set_ylabel(loss)
  ax.set_title(loss, fontsize=10)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  bx.axhline(suggested["adam"], color="k", lw=1, label=f"lr_find for Adam: {suggested['adam']:.3g}")
  bx.axhline(suggested["sgd"], color="k", lw=1, ls="--", label=f"lr_find for SGD: {suggested['sgd']:.3g}")
  bx.set_yscale("log")
  bx.set_xlabel("update")
  bx.set_ylabel("estimated step size")
  bx.set_title("estimated step size, and the rates the range test suggests", fontsize=10)
  bx.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  raise SystemExit(main())
