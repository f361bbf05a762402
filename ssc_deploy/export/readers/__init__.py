"""Readers of files we did not write: ``.pt2`` programs, exported artifacts, convolution sparsity."""
