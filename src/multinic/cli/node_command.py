"""``multinic node``: run the node daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

import click

from multinic.cni.errors import CNIError

#: glibc's mallopt parameter for the number of malloc arenas.
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Two malloc arenas for the daemon instead of glibc's up to eight per core.

    Every worker thread that allocates gets an arena of its own, and memory
    freed in one stays there: after a burst of pods the daemon's RSS is the sum
    of its workers' high-water marks. With two arenas the workers share and
    reuse (measured in docs/benchmarks.md). Nothing changes where this libc has
    no mallopt.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas))


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

    agent = None
    limit_malloc_arenas()
    try:
        config = load_node_config(config_path)
        if config.podnet is not None:
            from multinic.podnet.agent import PodNetAgent

            agent = PodNetAgent.from_config(config.podnet, config.meta.conf_dir)
            agent.start()  # the cluster network's conflist exists before the daemon announces
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
        if agent is not None:
            agent.stop()
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
    if agent is not None:
        agent.stop()  # the node's network stays: pods keep working while the daemon is away
    click.echo("multinic node: stopped", err=True)
