"""``multinic node``: run the node daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from multinic.cni.errors import CNIError


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/multinic/node.yaml"),
    show_default=True,
    help="The daemon's config file (docs/node.md).",
)
def node(config_path: Path) -> None:
    """Serve CNI calls from multinic-shim on this node (the DaemonSet's process)."""
    from multinic.meta.selector import build_meta_plugin, open_source
    from multinic.node.config import load_node_config
    from multinic.node.daemon import NodeDaemon
    from multinic.plugins.inprocess import InProcessExecutor

    try:
        config = load_node_config(config_path)
        source = open_source(config.meta)
        plugin = build_meta_plugin(
            config.meta, source, config.state_dir, config.bin_dirs, InProcessExecutor()
        )
        daemon = NodeDaemon(plugin, config.daemon)
        daemon.start()
        reconciler = None
        if config.ipam_reconcile is not None:
            from multinic.node.ipam_reconciler import IpamReconciler

            reconciler = IpamReconciler(config.ipam_reconcile)
            reconciler.start()
    except (CNIError, OSError) as exc:
        click.echo(f"multinic node: {exc}", err=True)
        sys.exit(1)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(
        f"multinic node: serving {config.daemon.socket_path}; health and metrics on "
        f"http://{config.daemon.health_host}:{daemon.health.port}",
        err=True,
    )
    stop.wait()
    if reconciler is not None:
        reconciler.stop()
    daemon.stop()
    click.echo("multinic node: stopped", err=True)
