"""The export targets by name, in the runtime table's order (each module imports its heavy packages lazily).

Target ``NAME`` lives in ``NAME_target.py``; its suffix, runtime and distribution come from
:mod:`ssc_deploy.runtimes`.
"""

import importlib

from ssc_deploy.runtimes import TARGET_NAMES

TARGETS = {name: importlib.import_module(f".{name}_target", __package__) for name in TARGET_NAMES}
