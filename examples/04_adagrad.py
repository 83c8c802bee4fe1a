"""Tutorial section 4: Adagrad, a per-parameter rate from the running sum of squared gradients.

With g_t the gradient at update t = 1, 2, ... (PyTorch's ``torch.optim.Adagrad``)::

    G_t = G_{t-1} + g_t**2                      (G_0 = 0)
    theta_t = theta_{t-1} - lr * g_t / (sqrt(G_t) + eps)

The first update moves every parameter by exactly ``lr`` (g / sqrt(g**2) = sign(g)), whatever the
scale of its gradient: on the raw house sizes, where plain gradient descent at rate 0.01 diverges,
Adagrad at 0.01 is stable. Then y = 3x + 2 + noise is fitted with ``optimizers.adagrad``.

Run: python examples/04_adagrad.py --steps 500 [--figure adagrad.png]
"""

import sys
from pathlib import Path

from lr_jax import optimizers

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _adaptive (also under runpy)
from _adaptive import run  # the section's shared body

NAME, HOUSE_RATE, LINE_RATE = "adagrad", 0.01, 0.5


def main(argv=None):
  return run(argv, __file__, __doc__, optimizers.adagrad, NAME, HOUSE_RATE, LINE_RATE)


if __name__ == "__main__":
  raise SystemExit(main())
