"""Usage errors and exit codes from typer reach the caller as one ``error:`` line, not as
internal exception names (typer 0.29 vendors click, so click's own classes do not match)."""

from __future__ import annotations

import pytest

from ssc_deploy.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--model", "ssc-net-1-9", "--opset", "abc"], "error: Invalid value for '--opset': "),
        (["models", "--no-such-option"], "error: No such option: --no-such-option"),
        (["no-such-command"], "error: No such command 'no-such-command'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err
    assert "BadParameter" not in err and "NoSuchOption" not in err and "UsageError" not in err
