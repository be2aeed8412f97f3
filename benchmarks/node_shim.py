"""Side by side: a primary-only pod through multinic-shim + the node daemon vs the floor.

The floor is the reference ``bridge`` with the reference ``host-local``, executed
directly as a runtime would. Ours, each shim a contender (the compiled one and
the Python one): the installed ``multinic-shim`` executed the same way,
forwarding to a node daemon in this process whose meta plugin attaches
``multinic-bridge`` with ``multinic-host-local`` in-process. Each round is one
ADD and one DEL (with ADD's result as prevResult), alternating the contenders so
machine noise hits them alike. Also: one shim round trip the daemon answers at
once (STATUS), a Go plugin's VERSION, and a bare ``python3 -I -S``.

Beside Multus thick and through the API: benchmarks/meta_pod.py.

Run as root:  .venv/bin/python benchmarks/node_shim.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.plugin_bridge import cycle_seconds  # noqa: E402
from tests.support import third_party  # noqa: E402
from tests.support.conflists import bridge_plugin, host_local  # noqa: E402
from tests.support.etcd_cluster import free_port  # noqa: E402

from multinic.cni.runtime import Runtime  # noqa: E402
from multinic.cni.skel import Request  # noqa: E402
from multinic.lab import netns as lab  # noqa: E402
from multinic.meta.attach import Attacher  # noqa: E402
from multinic.meta.plugin import MetaPlugin  # noqa: E402
from multinic.meta.records import PodAttachment, PodRef, RecordStore  # noqa: E402
from multinic.node.daemon import DaemonSettings, NodeDaemon  # noqa: E402
from multinic.plugins.inprocess import InProcessExecutor  # noqa: E402
from multinic.plugins.install import install_plugins  # noqa: E402

REFERENCE = third_party.reference_plugins()


class OnePrimary:
    """Every pod gets the one primary network."""

    def __init__(self, delegate: PodAttachment) -> None:
        self.delegate = delegate

    def delegates(self, request: Request, pod: PodRef) -> Sequence[PodAttachment]:
        del request, pod
        return [self.delegate]

    def report(self, pod: PodRef, network_status: list[dict[str, Any]]) -> None:
        del pod, network_status

    def status(self) -> None:
        return None


def median_ms(command: list[str], env: dict[str, str], stdin: bytes, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, env=env, input=stdin, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def start_daemon(scratch: Path, bridge: str) -> NodeDaemon:
    conf = {"cniVersion": "1.1.0", "name": "cluster"}
    conf["plugins"] = [
        {
            "type": "multinic-bridge",
            "bridge": bridge,
            "isGateway": True,
            "ipam": {
                "type": "multinic-host-local",
                "ranges": [[{"subnet": "198.18.47.0/24"}]],
                "dataDir": str(scratch / "ours-ipam"),
            },
        }
    ]
    selector = OnePrimary(PodAttachment("cluster", "eth0", json.dumps(conf).encode(), default=True))
    runtime = Runtime([REFERENCE], cache_dir=scratch / "cache", executor=InProcessExecutor())
    plugin = MetaPlugin(selector, Attacher(runtime, RecordStore(scratch / "meta")))
    settings = DaemonSettings(
        socket_path=scratch / "cni.sock", cni_conf_dir=scratch / "net.d", health_port=free_port()
    )
    daemon = NodeDaemon(plugin, settings)
    daemon.start()
    if not daemon.wait_ready(10):
        raise SystemExit("the daemon did not get ready")
    return daemon


def report(scratch: Path, pod: str, bridges: tuple[str, str], rounds: int) -> None:
    bin_dir, python_bin = scratch / "bin", scratch / "bin-python-shim"
    install_plugins(str(bin_dir))
    install_plugins(str(python_bin), use_compiled_shim=False)
    if not (bin_dir / "multinic-shim").read_bytes().startswith(b"\x7fELF"):
        raise SystemExit("the compiled shim is not built: run make install")
    netns = str(lab.create_netns(pod))
    daemon = start_daemon(scratch, bridges[1])
    try:
        shim_conf = {
            "cniVersion": "1.1.0",
            "name": "multinic",
            "type": "multinic-shim",
            "socketPath": str(daemon.settings.socket_path),
        }
        floor = bridge_plugin(bridges[0], host_local(scratch / "ref-ipam", "198.18.46.0/24"))
        contenders = {
            "reference bridge+host-local (floor)": (
                REFERENCE / "bridge",
                json.dumps({"cniVersion": "1.1.0", "name": "bench", **floor}).encode(),
            ),
            "compiled multinic-shim + daemon": (
                bin_dir / "multinic-shim",
                json.dumps(shim_conf).encode(),
            ),
            "Python multinic-shim + daemon": (
                python_bin / "multinic-shim",
                json.dumps(shim_conf).encode(),
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for warm_up in (True,) * 2 + (False,) * rounds:
            for name, (plugin, conf) in contenders.items():
                seconds = cycle_seconds(plugin, netns, conf, bin_dir)
                if not warm_up:
                    samples[name].append(seconds)
        print(f"primary-only pod ADD+DEL, executed as a runtime does, {rounds} alternating rounds")
        print(f"{'contender':<40}{'median ms':>10}{'ratio':>8}")
        names = list(contenders)
        base = samples[names[0]]
        for name in names:
            ratios = [s / b for s, b in zip(samples[name], base, strict=True)]
            median = statistics.median(samples[name]) * 1000
            print(f"{name:<40}{median:>10.1f}{statistics.median(ratios):>8.2f}")
        status = json.dumps(shim_conf).encode()
        env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/"}
        compiled = median_ms([str(bin_dir / "multinic-shim")], env, status, rounds)
        python = median_ms([str(python_bin / "multinic-shim")], env, status, rounds)
        go = median_ms([str(REFERENCE / "bridge")], {"CNI_COMMAND": "VERSION"}, b"", rounds)
        bare = median_ms([sys.executable, "-I", "-S", "-c", "pass"], {}, b"", rounds)
        print(
            f"one shim round trip (STATUS): compiled {compiled:.1f} ms, Python {python:.1f} ms; "
            f"Go plugin VERSION {go:.1f} ms; python -I -S {bare:.1f} ms"
        )
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
    scratch = Path(tempfile.mkdtemp(prefix="multinic-bench-"))
    tag = os.getpid() % 10000
    pod, bridges = f"mn-nbench-{tag}", (f"mnnref{tag}", f"mnnour{tag}")
    try:
        report(scratch, pod, bridges, rounds)
    finally:
        lab.delete_netns(pod)
        for bridge in bridges:
            lab.delete_link(bridge)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
