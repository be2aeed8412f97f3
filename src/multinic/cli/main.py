"""``multinic``: one CLI with subcommands.

Exit codes: 0 success; 1 a CNI operation failed (the message names the CNI
error code); 2 the command line itself was wrong.
"""

from __future__ import annotations

import click

from multinic import __version__
from multinic.cli.cni_commands import cni
from multinic.cli.ipam_command import ipam
from multinic.cli.lab_command import lab
from multinic.cli.node_command import node
from multinic.cli.plan_command import plan  # imports only click; the planner loads on use


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="multinic")
def cli() -> None:
    """Kubernetes pod networking for telco clouds."""


cli.add_command(cni)
cli.add_command(ipam)
cli.add_command(plan)
cli.add_command(node)
cli.add_command(lab)


@cli.command("install-plugins")
@click.argument("bin_dir", type=click.Path(file_okay=False))
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Write only this executable (repeatable), e.g. multinic-shim for a DaemonSet's host.",
)
def install_plugins_command(bin_dir: str, only: tuple[str, ...]) -> None:
    """Write multinic's plugin executables into BIN_DIR (for example /opt/cni/bin)."""
    from multinic.plugins.install import install_plugins, installed_from_source, package_root

    try:
        written = install_plugins(bin_dir, only=only)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot install plugins into {bin_dir}: {exc}") from exc
    for path in written:
        click.echo(path)
    if installed_from_source():
        # Fine for development; a node should not depend on someone's checkout.
        click.echo(
            f"note: multinic runs from the source tree {package_root()}: these executables "
            "use it; for a node, install the package (pip install) and run this again",
            err=True,
        )


def main() -> None:
    cli()
