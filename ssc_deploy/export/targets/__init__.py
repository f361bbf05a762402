"""The export targets by name, in the runtime table's order (each module imports its heavy packages lazily).

Each runtime has one folder here: ``NAME/target.py`` is its fp32 export (and the op histogram and
install check of its files), ``NAME/quantized.py`` its int8 (and fp16) export; its suffix, runtime
and distribution come from :mod:`ssc_deploy.runtimes`.
"""

import importlib

from ssc_deploy.runtimes import TARGET_NAMES

TARGETS = {name: importlib.import_module(f"{__name__}.{name}.target") for name in TARGET_NAMES}
# Each target's option class (``NAME/options.py``: what only that target reads).
TARGET_OPTIONS = {name: importlib.import_module(f"{__name__}.{name}.options").OPTIONS for name in TARGET_NAMES}
