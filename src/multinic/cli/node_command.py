"""``multinic node``: run the node daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

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
    limit_malloc_arenas()
    services = _Services()
    try:
        services.start(config_path)
    except (CNIError, OSError) as exc:
        click.echo(f"multinic node: {exc}", err=True)
        services.stop()
        sys.exit(1)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"multinic node: {services.describe()}", err=True)
    stop.wait()
    services.stop()
    click.echo("multinic node: stopped", err=True)


class _Services:
    """What the daemon runs: the primary network, the CNI socket, the IPAM reconciler."""

    def __init__(self) -> None:
        self.agent: Any = None
        self.daemon: Any = None
        self.reconciler: Any = None

    def start(self, config_path: Path) -> None:
        from multinic.meta.selector import build_meta_plugin, open_source
        from multinic.node.config import load_node_config
        from multinic.node.daemon import NodeDaemon
        from multinic.plugins.inprocess import InProcessExecutor

        config = load_node_config(config_path)
        if config.podnet is not None:
            from multinic.plugins.cluster_ipam import NODE_NAME_ENV
            from multinic.podnet.agent import PodNetAgent

            # multinic-ipam's block affinity key, in-process and executed alike: this node's
            # name, not the host's (nodes that share a host would share blocks).
            os.environ[NODE_NAME_ENV] = config.podnet.node_name
            self.agent = PodNetAgent.from_config(config.podnet, config.meta.conf_dir)
            self.agent.start()  # the cluster network's conflist exists before the announce
        plugin = build_meta_plugin(
            config.meta, open_source(config.meta), config.state_dir, config.bin_dirs,
            InProcessExecutor(),
        )  # fmt: skip
        self.daemon = NodeDaemon(plugin, config.daemon)
        self.daemon.start()
        if config.ipam_reconcile is not None:
            from multinic.node.ipam_reconciler import IpamReconciler

            self.reconciler = IpamReconciler(config.ipam_reconcile)
            self.reconciler.start()

    def describe(self) -> str:
        settings = self.daemon.settings
        return (
            f"serving {settings.socket_path}; health and metrics on "
            f"http://{settings.health_host}:{self.daemon.health.port}"
        )

    def stop(self) -> None:
        if self.reconciler is not None:
            self.reconciler.stop()
        if self.daemon is not None:
            self.daemon.stop()
        if self.agent is not None:
            self.agent.stop()  # the node's network stays: pods keep working meanwhile
