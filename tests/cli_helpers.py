"""Shared by the CLI tests of every sub-folder (``pythonpath = ["tests"]`` in pyproject)."""

from __future__ import annotations

from biosim.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``biosim ARGV`` in this process: ``(exit code, stdout, stderr)``, argparse's own exits
    included."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
