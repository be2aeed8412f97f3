"""podman 4 with its CNI backend, kept apart from the machine's own podman and CNI set-up.

Everything podman can be pointed at lives in one scratch directory: its
containers.conf (through ``CONTAINERS_CONF``), storage (``CONTAINERS_STORAGE_CONF``:
graph root and run root, the ``vfs`` driver so no overlay mounts), libpod's tmp
dir, file locks instead of the machine-wide ``/dev/shm/libpod_lock``, the network
config dir (so no conflist ever lands in /etc/cni/net.d), the CNI bin dir with our
installed plugins, and the host-local data dirs of the test networks. podman runs
in a network namespace of its own, the "node" (``nsenter --net``, so its mounts
are still the machine's): the plugins make the bridges and host-side veths there,
and a container's traffic to its gateway never reaches the machine's namespace.

podman 4.3 cannot be pointed elsewhere for a few things; :class:`PodmanHost`
tracks them and removes what it made: the network namespaces under /run/netns
(found by each container's SandboxKey), libcni's result cache in
/var/lib/cni/results (fixed in podman's vendored libcni), the image blob-info
cache in /var/lib/containers/cache, runc's state dir /run/runc, and the cgroups
under a cgroup parent of its own. Processes left behind (conmon, the
container's own, a ``podman container cleanup``) are found by that cgroup and by
the scratch path on their command line, and killed by pid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multinic.lab import netns as lab
from multinic.lab.netns import NETNS_DIR
from multinic.plugins.install import install_plugins
from tests.support import third_party

#: The CNI reference plugins built from containernetworking/plugins (v1.10, by
#: scripts/build-third-party); podman searches them after our bin dir.
REFERENCE_PLUGIN_DIR = third_party.directory("cni-plugins")
#: The newest version podman 4.3's own libcni reads: a 1.1.0 conflist's result
#: fails with 'unsupported CNI result version "1.1.0"', whoever's plugins run.
PODMAN_CNI_VERSION = "1.0.0"
BUSYBOX = Path("/bin/busybox")
#: The applets the tests run inside the container.
APPLETS = ("sh", "ip", "ping", "cat", "ls", "readlink", "sleep", "true")
IMAGE = "localhost/multinic-busybox:latest"
SCRATCH_PREFIX = "multinic-podman-"
LOCK_NAME = "\0multinic-podman-harness"
#: In each scratch dir: who made it, so a later run can tell an orphan.
OWNER = "owner.json"

#: Machine paths podman or its tools create when missing; removed again if we made them.
MACHINE_DIRS = (
    Path("/var/lib/cni/results"),
    Path("/var/lib/cni"),
    Path("/var/lib/containers/cache"),
    Path("/var/lib/containers"),
    Path("/run/runc"),
)
BLOB_INFO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
LIBCNI_CACHE = Path("/var/lib/cni/results")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Below this machine's hard limits: podman's defaults exceed them and runc fails
#: with "error setting rlimits".
ULIMITS = ("--ulimit", "nofile=1000:1000", "--ulimit", "nproc=1000:1000")


class PodmanError(RuntimeError):
    """A podman command the harness needs failed."""


@dataclass
class PodmanHost:
    """One isolated podman installation: its scratch dir, environment and config paths."""

    base: Path
    env: dict[str, str]
    bin_dir: Path
    network_dir: Path
    cgroup_parent: str
    #: The network namespace podman runs in: its bridges and host-side veths live there.
    node: str

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run ``podman ARGS`` in this installation; stdout, or PodmanError with stderr."""
        done = subprocess.run(
            # Only the network namespace: podman's mounts (/run/netns) stay the machine's.
            ["nsenter", f"--net={NETNS_DIR / self.node}", "podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done.stdout

    def container_flags(self, network: str) -> list[str]:
        """The flags every container of the tests needs on this machine."""
        return [
            # crun refuses this machine's hybrid cgroup layout; runc does not.
            "--runtime",
            "runc",
            *ULIMITS,
            # Our own cgroup parent, so teardown finds (and removes) exactly our cgroups.
            "--cgroup-parent",
            f"/{self.cgroup_parent}",
            "--cgroups",
            "no-conmon",
            "--network",
            network,
        ]

    def write_network(self, conflist: dict[str, Any]) -> Path:
        """Put a conflist into this installation's network config dir."""
        path = self.network_dir / f"{conflist['name']}.conflist"
        path.write_text(json.dumps(conflist, indent=2), encoding="utf-8")
        return path

    def own_pids(self) -> set[int]:
        """Processes of this installation: in its cgroups, or naming its scratch dir."""
        return set(_cgroup_pids(self.cgroup_parent)) | set(self._naming_base())

    def _naming_base(self) -> dict[int, bytes]:
        """pid -> command line of the processes whose command line names the scratch dir."""
        marker = str(self.base).encode()
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                if marker in cmdline:
                    found[int(proc.name)] = cmdline
        return found

    def settle(self, patience: float = 30.0) -> None:
        """Wait until only the conmons of running containers are left.

        conmon outlives a container by a moment, and runs ``podman container
        cleanup`` (which may tear the network down) after the podman command that
        stopped the container has returned.
        """
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            running = self.podman("ps", "-q", "--no-trunc", check=False).split()
            busy = [
                cmdline
                for cmdline in self._naming_base().values()
                if not any(f"\0{cid}\0".encode() in cmdline for cid in running)
            ]
            if not busy:
                return
            time.sleep(0.05)

    def sandboxes(self) -> list[Path]:
        """The network namespace paths of every container in this installation."""
        ids = self.podman("ps", "-aq", "--no-trunc", check=False).split()
        keys = []
        for cid in ids:
            key = self.podman(
                "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", cid, check=False
            ).strip()
            if key:
                keys.append(Path(key))
        return keys


def libcni_cache_entry(network: str, container_id: str, ifname: str = "eth0") -> Path:
    """Where podman's libcni keeps the result of one attachment."""
    return LIBCNI_CACHE / f"{network}-{container_id}-{ifname}"


def _cgroup_dirs(parent: str) -> list[Path]:
    return [c / parent for c in CGROUP_ROOT.iterdir() if (c / parent).is_dir()]


def _cgroup_pids(parent: str) -> Iterator[int]:
    for top in _cgroup_dirs(parent):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                yield from (int(p) for p in procs.read_text().split())


def _mounts_under(*roots: Path) -> list[Path]:
    """Mount points at or below ``roots``, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].replace("\\040", " "))
        if any(point == r or r in point.parents for r in roots):
            points.append(point)
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def _build_rootfs(base: Path) -> Path:
    """A tarball of a busybox-static root file system with the applets the tests use."""
    root = base / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    tarball = base / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
    return tarball


def _environment(base: Path) -> dict[str, str]:
    """The environment that points podman at the configs in ``base``."""
    return {
        "PATH": PATH,
        "HOME": str(base),
        "CONTAINERS_CONF": str(base / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
        # Image import stages layers in TMPDIR (default /var/tmp).
        "TMPDIR": str(base / "tmp"),
    }


def _write_configs(base: Path, bin_dir: Path, network_dir: Path) -> None:
    """containers.conf and storage.conf in ``base``, as ``_environment`` names them."""
    env = _environment(base)
    tmp = Path(env["TMPDIR"])
    tmp.mkdir()
    conmon_env = [f"{k}={v}" for k, v in env.items() if k != "HOME"]
    (base / "containers.conf").write_text(
        f"""[engine]
cgroup_manager = "cgroupfs"
conmon_env_vars = {json.dumps(conmon_env)}
events_logger = "none"
lock_type = "file"
runtime = "runc"
tmp_dir = "{tmp}"
volume_path = "{base / "volumes"}"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{bin_dir}", "{REFERENCE_PLUGIN_DIR}"]
network_config_dir = "{network_dir}"
# podman's own default network; the tests never use it, but keep it in test space.
default_subnet = "198.18.255.0/24"
""",
        encoding="utf-8",
    )
    (base / "storage.conf").write_text(
        f"""[storage]
driver = "vfs"
graphroot = "{base / "root"}"
runroot = "{base / "runroot"}"
""",
        encoding="utf-8",
    )


@contextlib.contextmanager
def podman_host() -> Iterator[PodmanHost]:
    """An isolated podman with our plugins installed and the busybox image imported.

    Everything it made is removed when the block ends, however it ends; a
    cleanup step that fails is reported after all the others have run. What an
    earlier run killed before its teardown left behind is removed first.
    """
    if shutil.which("podman") is None or not BUSYBOX.exists():
        raise PodmanError("podman or busybox-static missing: run scripts/install-system-deps")
    with _machine_lock():
        reap_orphans()
        created = [d for d in MACHINE_DIRS if not d.exists()]
        base = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        token = secrets.token_hex(4)
        host = _host_at(base, f"multinic-podman-{token}", f"mnpm-node-{token}")
        with _set_up(host, created):
            yield host


@contextlib.contextmanager
def _machine_lock(patience: float = 900.0) -> Iterator[None]:
    """One harness at a time on this machine.

    Concurrent test runs (several ``make test`` at once) would otherwise share
    the fixed subnets and /run/netns. The lock is an abstract Unix socket name:
    the kernel frees it when its holder exits, however it exits.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + patience
    try:
        while True:
            try:
                lock.bind(LOCK_NAME)
                break
            except OSError as error:
                if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise PodmanError(f"cannot take the podman harness lock: {error}") from error
                time.sleep(0.2)
        yield
    finally:
        lock.close()


@contextlib.contextmanager
def _set_up(host: PodmanHost, created: list[Path]) -> Iterator[None]:
    """Fill the scratch dir and import the image; tear it all down however the block ends."""
    base = host.base
    try:
        (base / OWNER).write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "start": _process_start(os.getpid()),
                    "cgroup_parent": host.cgroup_parent,
                    "node": host.node,
                    "created": [str(d) for d in created],
                }
            ),
            encoding="utf-8",
        )
        lab.create_netns(host.node)
        host.network_dir.mkdir()
        install_plugins(str(host.bin_dir))
        _write_configs(base, host.bin_dir, host.network_dir)
        host.podman("import", "--quiet", str(_build_rootfs(base)), IMAGE)
        yield
    finally:
        _teardown(host, created)


def _host_at(base: Path, cgroup_parent: str, node: str) -> PodmanHost:
    return PodmanHost(
        base=base,
        env=_environment(base),
        bin_dir=base / "bin",
        network_dir=base / "net.d",
        cgroup_parent=cgroup_parent,
        node=node,
    )


def _process_start(pid: int) -> str | None:
    """The start time of a live process (tells a reused pid from the original)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def reap_orphans() -> None:
    """Tear down the scratch dirs of runs that died before their own teardown."""
    for base in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        try:
            owner = json.loads((base / OWNER).read_text())
        except (OSError, ValueError):
            continue  # still being set up, or not ours
        if _process_start(owner["pid"]) == owner["start"]:
            continue  # its run is alive
        with contextlib.suppress(PodmanError):
            _teardown(
                _host_at(base, owner["cgroup_parent"], owner["node"]),
                [Path(d) for d in owner["created"]],
            )


def _teardown(host: PodmanHost, created: list[Path]) -> None:
    problems: list[str] = []
    sandboxes: list[Path] = []
    with contextlib.suppress(Exception):
        sandboxes = host.sandboxes()
    try:
        host.podman("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
    except subprocess.TimeoutExpired:
        problems.append("podman rm --all timed out")
    host.settle(patience=10.0)
    for pid in host.own_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            problems.append(f"killed left-over process {pid}")
    host.settle(patience=5.0)
    for point in _mounts_under(host.base, *sandboxes):
        subprocess.run(["umount", "--lazy", str(point)], check=False, capture_output=True)
    for sandbox in sandboxes:
        if sandbox.exists():
            problems.append(f"removed left-over network namespace {sandbox}")
            with contextlib.suppress(OSError):
                sandbox.unlink()
    problems.extend(_remove_cgroups(host.cgroup_parent))
    # With the node namespace go its bridges and any veth a failed DEL left.
    try:
        lab.delete_netns(host.node)
    except lab.LabError as error:
        problems.append(str(error))
    shutil.rmtree(host.base, ignore_errors=True)
    if host.base.exists():
        problems.append(f"could not remove {host.base}")
    _remove_created_dirs(created)
    if problems:
        raise PodmanError("podman teardown: " + "; ".join(problems))


def _remove_cgroups(parent: str) -> list[str]:
    # The kernel frees a cgroup a moment after its last process exits: retry briefly.
    deadline = time.monotonic() + 5.0
    while True:
        left = []
        for top in _cgroup_dirs(parent):
            for cgroup in sorted(
                (d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if top.exists():
                left.append(str(top))
        if not left or time.monotonic() > deadline:
            return [f"could not remove cgroup {c}" for c in left]
        time.sleep(0.1)


def _remove_created_dirs(created: list[Path]) -> None:
    if BLOB_INFO_CACHE.parent in created:
        with contextlib.suppress(OSError):
            BLOB_INFO_CACHE.unlink()
    # Deepest first; a directory something else has put files in meanwhile stays.
    for directory in sorted(created, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
