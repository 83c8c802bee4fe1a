"""Optimizers with PyTorch's numerics, as Optax ``GradientTransformation``s."""

__all__ = []
