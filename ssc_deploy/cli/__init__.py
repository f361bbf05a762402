"""Command-line entry point: ``ssc-deploy``. Commands live one area a module and stay thin."""

from __future__ import annotations

import os
import sys

from ssc_deploy.errors import SscDeployError

from .app import app
from . import models_cmd, train_cmd, export_cmd, bench_cmd, devices_cmd, quickstart_cmd, profile_cmd  # noqa: F401,E402


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit, never a traceback.

    Set ``SSC_DEPLOY_DEBUG=1`` to see the traceback of an unexpected failure.
    """
    try:
        app(args=argv, standalone_mode=False)
    except SscDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except SystemExit as err:  # typer/click exit codes (usage errors, --help)
        return err.code if isinstance(err.code, int) else 1
    except Exception as err:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("SSC_DEPLOY_DEBUG"):
            raise
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return err.exit_code
        if isinstance(err, click.exceptions.Abort):
            print("error: aborted", file=sys.stderr)
            return 1
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
