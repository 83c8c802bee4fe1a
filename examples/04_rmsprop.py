"""Tutorial section 4: RMSprop, a per-parameter rate from a moving average of squared gradients.

With g_t the gradient at update t = 1, 2, ... (PyTorch's ``torch.optim.RMSprop``, alpha = 0.99)::

    v_t = alpha * v_{t-1} + (1 - alpha) * g_t**2      (v_0 = 0)
    theta_t = theta_{t-1} - lr * g_t / (sqrt(v_t) + eps)

There is no bias correction: v_1 = 0.01 g**2, so the first update moves every parameter by
lr / sqrt(0.01) = 10 lr. On the raw house sizes, where plain gradient descent at rate 0.01
diverges, RMSprop at 0.01 is stable. Then y = 3x + 2 + noise is fitted with ``optimizers.rmsprop``.

Run: python examples/04_rmsprop.py --steps 500 [--figure rmsprop.png]
"""

import sys
from pathlib import Path

from lr_jax import optimizers

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _adaptive (also under runpy)
from _adaptive import run  # the section's shared body

NAME, HOUSE_RATE, LINE_RATE = "rmsprop", 0.01, 0.01


def main(argv=None):
  return run(argv, __file__, __doc__, optimizers.rmsprop, NAME, HOUSE_RATE, LINE_RATE)


if __name__ == "__main__":
  raise SystemExit(main())
