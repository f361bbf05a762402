"""ssc-deploy: train, export and benchmark Super Sparse Convolutional networks for mobile."""

__version__ = "0.1.0"
