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


ONE_LINE_LIMIT = 300  # characters of an exception's first line that a one-line message keeps


def one_line(err: BaseException | str, limit: int = ONE_LINE_LIMIT) -> str:
    """The first non-empty line of an exception's text, at most ``limit`` characters.

    An exception with no text gives its type name; an empty string gives ``""``.
    """
    text = err.strip() if isinstance(err, str) else str(err).strip()
    if not text:
        return "" if isinstance(err, str) else type(err).__name__
    return text.splitlines()[0][:limit]


def last_line(text: str, default: str) -> str:
    """The last non-empty line of a tool's output (where its error usually is), stripped and at most
    :data:`ONE_LINE_LIMIT` characters; ``default`` when there is none."""
    line = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), default)
    return line[:ONE_LINE_LIMIT]


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


_stop_requested: list[bool] = []  # [terminated?] once SIGINT or SIGTERM arrived in this process


def note_stop(terminated: bool) -> None:
    """Record that SIGINT (``terminated=False``) or SIGTERM arrived (the CLI's signal handlers call it)."""
    if not _stop_requested:
        _stop_requested.append(terminated)


def raise_if_stopped() -> None:
    """Raise :class:`Terminated` / ``KeyboardInterrupt`` again when a stop was requested.

    For the step before anything is committed to disk: a converter that catches
    ``BaseException`` can swallow the interrupt its native code was in (seen with litert-torch
    under load), and the export must not then finish as if nothing had happened.
    """
    if _stop_requested:
        raise Terminated() if _stop_requested[0] else KeyboardInterrupt()


def run_script(main) -> None:
    """Run a script's ``main()`` and exit with its code; an :class:`SscDeployError` is one ``error:`` line."""
    import sys

    try:
        code = main()
    except SscDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(code)
