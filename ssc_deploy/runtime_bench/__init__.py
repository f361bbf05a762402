"""Benchmarking exported models: the standalone device runner, the harness that drives it on
devices, the terminal/JSON/CSV table, the plots and report, and the SQLite results store.

Import the submodules you need (``harness``, ``table``, ``report``, ``store``); this package
imports nothing heavy, so ``ssc-deploy --help`` stays fast.
"""
