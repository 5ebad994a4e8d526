"""What every `levelflow` command shares: located errors instead of tracebacks, and warnings
(with `--strict`, errors). Imported by cli.py and cli_local.py alike."""
from __future__ import annotations

import functools
import sys

import click

from .errors import LevelflowError


def reports_problems(command):
    """Bad input becomes located messages on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LevelflowError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
            sys.exit(1)

    return wrapper


strict_option = click.option("--strict", is_flag=True,
                             help="Treat warnings as errors: exit 1 (and write nothing) when there is any.")


def print_warnings(caught, strict: bool) -> None:
    """Show warnings recorded by `warnings.catch_warnings(record=True)`; --strict: exit 1."""
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    if strict and caught:
        click.echo(f"error: {len(caught)} warning(s), and --strict treats warnings as errors", err=True)
        sys.exit(1)
