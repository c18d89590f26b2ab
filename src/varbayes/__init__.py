"""varbayes: variational inference for neural-network regression with honest uncertainty."""

__version__ = "0.1.0"
