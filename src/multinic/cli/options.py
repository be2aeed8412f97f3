"""Checks at the command line's boundary, shared by the commands: a value that makes
no sense is a usage error (exit 2) naming the option, never a traceback later.

Only click and the standard library: ``multinic cni`` imports this on every call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Callback for a timeout: a finite number of seconds above zero.

    click's FLOAT takes "nan" and "inf", and a range check does not catch NaN
    (every comparison with it is false): a NaN deadline never expires, or at once.
    """
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"{value} is not a finite number of seconds above 0", ctx, param)
    return value


def one_of(*flags: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Callback for flags that share a destination with ``multiple=True``: at most one of them.

    click lets the last of ``--json --yaml`` win silently; collected as a list,
    two different ones are a usage error.
    """

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        del param
        chosen = list(dict.fromkeys(value or ()))
        if len(chosen) > 1:
            raise click.UsageError(f"{' and '.join(flags)} are mutually exclusive", ctx)
        return chosen[0] if chosen else None

    return check


def given(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was set on the command line or from the environment."""
    source = ctx.get_parameter_source(name)
    return source in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.ENVIRONMENT,
    )


def output_file(path: Path, option: str) -> None:
    """Refuse, before any work, a file that cannot be written where it is asked for."""
    directory = path.absolute().parent
    if not directory.is_dir():
        raise click.BadParameter(f"directory {directory} does not exist", param_hint=option)
    if path.is_dir():
        raise click.BadParameter(f"{path} is a directory, not a file", param_hint=option)


def write_failed(path: Path | str, exc: OSError) -> click.ClickException:
    """The error for a write that failed anyway (permissions, a full disk): exit 1, no traceback."""
    return click.ClickException(f"cannot write {path}: {exc.strerror or exc}")
