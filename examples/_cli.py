"""The command line every tutorial script shares: ``--steps N`` and ``--figure FILE``.

A bad value (``--steps 0``, ``--steps x``) ends the script with one line on stderr and exit code 2,
never a traceback.
"""

import argparse
import os


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # argparse prints a usage block first; one line is enough
    self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv, script, doc, steps, min_steps=1, what="training steps", json=False):
  """Parses ``argv`` for ``script`` (its ``__file__``; ``doc`` is its docstring): ``--steps`` (default
  ``steps``, at least ``min_steps``), ``--figure`` and, with ``json=True``, ``--json FILE`` (the
  printed lines and the numbers behind them, which the tests compare with the READMEs). Returns the
  namespace; exits 2 on bad input."""
  parser = _Parser(prog=os.path.basename(script), description=doc.splitlines()[0])
  parser.add_argument(
    "--steps", type=int, default=steps, help=f"{what} (default {steps}, at least {min_steps})"
  )
  parser.add_argument("--figure", help="write this section's figure (PNG) here")
  if json:
    parser.add_argument("--json", help="also write the printed lines and the numbers behind them here")
  args = parser.parse_args(argv)
  if args.steps < min_steps:
    parser.error(f"--steps must be >= {min_steps} ({what}), got --steps={args.steps}")
  return args
