"""Where ssc-deploy keeps what it computes once per user and machine (torch-free).

``$SSC_DEPLOY_CACHE`` when set, else ``$XDG_CACHE_HOME/ssc-deploy``, else ``~/.cache/ssc-deploy``.
Tests point ``SSC_DEPLOY_CACHE`` at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """The ssc-deploy cache directory (not created here)."""
    base = os.environ.get("SSC_DEPLOY_CACHE")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ssc-deploy"
