"""The one exception type that reaches users as a single clear line."""


class SscDeployError(Exception):
    """A problem the user can fix (bad input, missing package, wrong file).

    The CLI prints ``error: <message>`` on one line and exits with ``exit_code``;
    library callers can catch it like any exception.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def missing_package(package: str, extra: str) -> SscDeployError:
    """The error for a runtime package that is not installed, naming the extra that brings it."""
    return SscDeployError(
        f"the Python package '{package}' is not installed: pip install 'ssc-deploy[{extra}]'"
    )


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler.

    A ``KeyboardInterrupt`` so every path that cleans up after Ctrl-C (staging
    directories, temporary files, child process groups) cleans up after SIGTERM too,
    and no ``except Exception`` swallows it.
    """
