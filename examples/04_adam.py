"""Tutorial section 4: Adam, momentum plus an RMSprop-like per-parameter rate, bias-corrected.

With g_t the gradient at update t = 1, 2, ... (PyTorch's ``torch.optim.Adam``, b1 = 0.9, b2 = 0.999)::

    m_t = b1 * m_{t-1} + (1 - b1) * g_t               v_t = b2 * v_{t-1} + (1 - b2) * g_t**2
    theta_t = theta_{t-1} - lr * (m_t / (1 - b1**t)) / (sqrt(v_t / (1 - b2**t)) + eps)

Bias correction makes the first update exactly lr * sign(g) for every parameter. On the raw house
sizes, where plain gradient descent at rate 0.01 diverges, Adam at 0.01 is stable. Then
y = 3x + 2 + noise is fitted with ``optimizers.adam``.

Run: python examples/04_adam.py --steps 500 [--figure adam.png]
"""

import sys
from pathlib import Path

from lr_jax import optimizers

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for _adaptive (also under runpy)
from _adaptive import run  # the section's shared body

NAME, HOUSE_RATE, LINE_RATE = "adam", 0.01, 0.05


def main(argv=None):
  return run(argv, __file__, __doc__, optimizers.adam, NAME, HOUSE_RATE, LINE_RATE)


if __name__ == "__main__":
  raise SystemExit(main())
