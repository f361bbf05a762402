"""Command-line entry point: ``ssc-deploy``. Commands live one area a module and stay thin."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import typer

from ssc_deploy.errors import SscDeployError, Terminated, note_stop, raise_if_stopped

from .app import app
from . import models_cmd, train_cmd, export_cmd, bench_cmd, devices_cmd, quickstart_cmd, profile_cmd  # noqa: F401,E402

# Exit codes of a process stopped by a signal, as a shell reports them (128 + signal number).
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


@contextmanager
def _sigterm_raises() -> Iterator[dict[str, bool]]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (once: a second
    SIGTERM is ignored so the cleanup the first one started can finish).

    Yields a dict whose ``"terminated"`` entry tells, afterwards, whether SIGTERM arrived.
    """
    seen = {"terminated": False}
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum: int, frame: object) -> None:
        seen["terminated"] = True
        note_stop(terminated=True)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    def interrupt(signum: int, frame: object) -> None:
        note_stop(terminated=False)
        raise KeyboardInterrupt()

    def unraisable(info) -> None:
        # A signal that lands in a gc callback or __del__ (jax's, under litert-torch) raises where Python
        # can only print the exception; the stop is already noted and raise_if_stopped ends the run.
        if not isinstance(info.exc_value, (Terminated, KeyboardInterrupt)):
            previous_hook(info)

    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:  # leave an ignored SIGINT ignored
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield seen
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


def _stopped(terminated: bool) -> int:
    """The one line and exit code for a run stopped by Ctrl-C or SIGTERM."""
    if terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM
    print("error: interrupted", file=sys.stderr)
    return EXIT_SIGINT


def _check_process() -> None:
    """What every command needs before it starts: a working directory that still exists (else
    native libraries fail in their own words: oneMKL's fatal error) and a standard output to
    print on (``>&-`` closes it, and every line would vanish while the command exits 0)."""
    try:
        os.getcwd()
    except OSError as err:
        raise SscDeployError(f"the current directory is gone ({err.strerror or err}): cd to one that exists") from None
    try:
        closed = sys.stdout is None or sys.stdout.fileno() < 0 or os.fstat(sys.stdout.fileno()) is None
    except io.UnsupportedOperation:  # a stream with no descriptor (captured in tests): printing to it works
        closed = False
    except (OSError, ValueError):
        closed = True
    if closed:
        raise SscDeployError("standard output is closed: redirect it to a file or /dev/null instead", exit_code=1)


class _GuardedStdout:
    """Standard output that remembers a failed write (a full disk, ``/dev/full``, a closed pipe), so
    the one error line can say the report was lost, not the files the command wrote."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as err:
            self.failure = err
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as err:
            self.failure = err
            raise

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _stdout_lost(guard: _GuardedStdout) -> str | None:
    """The error line when printing failed; standard output then goes to /dev/null, so that
    leaving Python (which flushes it again) does not fail a second time."""
    try:
        guard.flush()
    except OSError:
        pass
    if guard.failure is None:
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, guard.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    return (f"error: cannot print to standard output ({guard.failure.strerror or guard.failure}); the files the "
            "command wrote are complete and kept, only its report was lost")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit, never a traceback.

    Ctrl-C exits 130 and SIGTERM 143, each with one line, after the usual cleanup ran.
    Set ``SSC_DEPLOY_DEBUG=1`` to see the traceback of an unexpected failure.
    """
    try:
        _check_process()
    except SscDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    guard = sys.stdout = _GuardedStdout(sys.stdout)
    try:
        code = _run(argv)
    finally:
        sys.stdout = guard._stream
    lost = _stdout_lost(guard)
    if lost:
        print(lost, file=sys.stderr)
        return code or 1
    return code


def _run(argv: list[str] | None) -> int:
    """The command, its errors as one line each and its exit code."""
    seen = {"terminated": False}
    try:
        with _sigterm_raises() as seen:
            # With standalone_mode=False typer returns exit codes (130 for KeyboardInterrupt) instead of exiting.
            rv = app(args=argv, standalone_mode=False)
    except SscDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:
        return _stopped(seen["terminated"] or isinstance(err, Terminated))
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else 1
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as err:  # usage errors: bad option value, unknown option, missing argument
        print(f"error: {err.format_message()}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("SSC_DEPLOY_DEBUG"):
            raise
        if isinstance(err, OSError) and isinstance(sys.stdout, _GuardedStdout) and sys.stdout.failure is err:
            return 1  # main() prints the one line
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    code = rv if isinstance(rv, int) else 0
    if code == EXIT_SIGINT:
        return _stopped(seen["terminated"])
    try:
        raise_if_stopped()  # a library swallowed the interrupt: the run still did not finish as asked
    except KeyboardInterrupt as err:
        return _stopped(isinstance(err, Terminated))
    return code


if __name__ == "__main__":
    sys.exit(main())
