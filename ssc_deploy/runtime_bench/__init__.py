"""Benchmarking exported models: the standalone device runner, the harness that drives it on
devices, the terminal/JSON/CSV table, the plots and report, and the SQLite results store.

Import the submodules you need (``harness`` for ``run_bench`` and ``BenchSettings``, ``table``,
``report``, ``store``, ``results_view``); the harness's steps each have their own module
(``sources``, ``baselines``, ``exports``, ``inputs``, ``jobs``, ``schedule``, ``rows``, ...).
This package imports nothing heavy, so ``ssc-deploy --help`` stays fast.
"""
