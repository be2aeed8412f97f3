"""The guest's boot image: Debian's stock kernel and a busybox initramfs, built once and cached.

This machine's kernel has no ipvlan, 802.1Q vlan or dummy links; Debian's stock
kernel has them as modules. The kernel package (the one ``linux-image-amd64``
depends on) and ``busybox-static`` are only downloaded and unpacked with
``dpkg -x``, never installed on the host. The initramfs holds busybox, the
modules in :data:`MODULES` with everything they depend on, and ``init.sh``.

An image lives in ``CACHE_DIR/img-KEY`` where KEY hashes the kernel package and
version, the module list and the init script, so any of them changing builds a
new image; images unused for two weeks are dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where images (and the per-run job dirs) live; MULTINIC_GUEST_CACHE overrides it.
CACHE_DIR = Path(os.environ.get("MULTINIC_GUEST_CACHE", "/var/cache/multinic-guest"))

#: Loaded at boot. The first four mount the host's files; the rest are the link
#: types our plugins create (ipvlan, vlan, macvlan, ...), test helpers (dummy) and
#: nftables (the guest's userland is the host's, ``nft`` included; the kernel part is not).
MODULES = (
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "overlay",
    "ipvlan",
    "8021q",
    "dummy",
    "macvlan",
    "vxlan",
    "veth",
    "bridge",
    "vrf",
    "bonding",
    "tun",
    # nftables with NAT: the lab's node daemons write their egress SNAT table.
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
)

INIT_SCRIPT = Path(__file__).with_name("init.sh")

#: Bumped when the image layout changes in a way the other key parts do not show.
FORMAT = "1"

KEEP_UNUSED_SECONDS = 14 * 24 * 3600


class ImageError(RuntimeError):
    """The guest image could not be resolved, downloaded or built."""


@dataclass(frozen=True)
class GuestImage:
    """A built image: the kernel QEMU boots, its initramfs, and the kernel release."""

    kernel: Path
    initrd: Path
    release: str


def ensure_image(cache_dir: Path = CACHE_DIR) -> GuestImage:
    """The cached image for the current kernel package, building it first if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    package, version = _kernel_package(cache_dir)
    key = _image_key(package, version)
    image_dir = cache_dir / f"img-{key}"
    if not (image_dir / "done").exists():
        with _locked(cache_dir / ".lock"):
            if not (image_dir / "done").exists():
                _build(cache_dir, image_dir, package)
                _prune(cache_dir, keep=image_dir)
    (image_dir / "done").touch()  # mtime = last use, for pruning
    return GuestImage(
        kernel=image_dir / "kernel",
        initrd=image_dir / "initrd",
        release=(image_dir / "release").read_text().strip(),
    )


def _image_key(package: str, version: str) -> str:
    digest = hashlib.sha256()
    for part in (FORMAT, package, version, " ".join(MODULES), INIT_SCRIPT.read_text()):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


# ---- which kernel


def _kernel_package(cache_dir: Path) -> tuple[str, str]:
    """(package, candidate version) of the kernel linux-image-amd64 depends on.

    Remembered per state of apt's package lists, so a cached run asks apt nothing.
    """
    lists = sorted(Path("/var/lib/apt/lists").glob("*Packages*"))
    state = hashlib.sha256()
    for path in lists:
        info = path.stat()
        state.update(f"{path} {info.st_mtime_ns} {info.st_size}\n".encode())
    memo = cache_dir / f"kernel-{state.hexdigest()[:16]}"
    with contextlib.suppress(FileNotFoundError, ValueError):
        package, version = memo.read_text().split()
        return package, version
    found = _ask_apt()
    if found is None:
        _apt("update", "-qq")
        found = _ask_apt()
    if found is None:
        raise ImageError("apt knows no kernel package behind linux-image-amd64")
    for old in cache_dir.glob("kernel-*"):
        old.unlink(missing_ok=True)
    memo.write_text(" ".join(found) + "\n")
    return found


def _ask_apt() -> tuple[str, str] | None:
    depends = _apt_query("apt-cache", "depends", "linux-image-amd64")
    package = next(
        (
            line.split()[1]
            for line in depends.splitlines()
            if line.strip().startswith("Depends: linux-image-")
        ),
        None,
    )
    if package is None:
        return None
    policy = _apt_query("apt-cache", "policy", package)
    version = next(
        (line.split()[1] for line in policy.splitlines() if line.strip().startswith("Candidate:")),
        None,
    )
    if version is None or version == "(none)":
        return None
    return package, version


def _apt_query(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else ""


def _apt(*args: str, cwd: Path | None = None) -> None:
    command = ["apt-get", *args]
    done = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if done.returncode != 0:
        raise ImageError(f"{' '.join(command)} failed: {done.stderr.strip()}")


# ---- building


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(cache_dir: Path, image_dir: Path, package: str) -> None:
    for leftover in cache_dir.glob("build.*"):  # of a build that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="build.", dir=cache_dir))
    try:
        debs = _download(work, package)
        kernel_root, busybox_root = work / "kernel", work / "busybox"
        _run("dpkg", "-x", str(debs[package]), str(kernel_root))
        _run("dpkg", "-x", str(debs["busybox-static"]), str(busybox_root))
        busybox = busybox_root / "bin" / "busybox"
        (release,) = (p.name for p in (kernel_root / "lib" / "modules").iterdir())
        out = work / "image"
        out.mkdir()
        _write_kernel(kernel_root / "boot" / f"vmlinuz-{release}", out / "kernel")
        (out / "initrd").write_bytes(_initramfs(kernel_root, release, busybox))
        (out / "release").write_text(release + "\n")
        (out / "done").touch()
        shutil.rmtree(image_dir, ignore_errors=True)
        out.rename(image_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(work: Path, package: str) -> dict[str, Path]:
    wanted = (package, "busybox-static")
    # apt's sandbox user cannot write into a root-only cache dir.
    args = ("download", "-qq", "-o", "APT::Sandbox::User=root", *wanted)
    try:
        _apt(*args, cwd=work)
    except ImageError:  # stale package lists: the version apt knew is gone from the mirror
        _apt("update", "-qq")
        _apt(*args, cwd=work)
    found: dict[str, Path] = {}
    for name in wanted:
        (found[name],) = work.glob(f"{name}_*.deb")
    return found


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def _write_kernel(vmlinuz: Path, target: Path) -> None:
    """The uncompressed ELF vmlinux when it can be had, else the bzImage as shipped.

    QEMU boots the ELF through its PVH entry point, which skips the kernel's own
    decompressor: that takes seconds under software emulation.
    """
    packed = vmlinuz.read_bytes()
    start = packed.find(b"\xfd7zXZ\x00")
    if start >= 0:
        with contextlib.suppress(lzma.LZMAError):
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(packed[start:])
            if elf.startswith(b"\x7fELF"):
                target.write_bytes(elf)
                return
    target.write_bytes(packed)


def _initramfs(kernel_root: Path, release: str, busybox: Path) -> bytes:
    modules_dir = kernel_root / "lib" / "modules" / release
    _run(str(busybox), "depmod", "-b", str(kernel_root), release)
    index = _ModuleIndex(modules_dir)
    load = [name for name in MODULES if index.resolve(name)]
    files: dict[str, bytes] = {
        "init": INIT_SCRIPT.read_bytes(),
        "bin/busybox": busybox.read_bytes(),
        "etc/guest-modules": ("\n".join(load) + "\n").encode(),
    }
    for relative in index.closure(load):
        files[f"lib/modules/{release}/{relative}"] = (modules_dir / relative).read_bytes()
    for name in ("modules.builtin", "modules.order"):
        files[f"lib/modules/{release}/{name}"] = (modules_dir / name).read_bytes()
    # busybox modprobe needs a modules.dep for exactly the modules we ship.
    with tempfile.TemporaryDirectory() as tree:
        for name, data in files.items():
            path = Path(tree, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        _run(str(busybox), "depmod", "-b", tree, release)
        for name in ("modules.dep", "modules.alias", "modules.symbols"):
            generated = Path(tree, "lib", "modules", release, name)
            if generated.exists():
                files[f"lib/modules/{release}/{name}"] = generated.read_bytes()
    directories = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev"]
    return gzip.compress(_cpio_newc(directories, files), compresslevel=1)


class _ModuleIndex:
    """What a module pulls in: modules.dep, soft dependencies, and aliases (crc32c -> ...)."""

    def __init__(self, modules_dir: Path) -> None:
        self.modules_dir = modules_dir
        self.path: dict[str, str] = {}
        self.depends: dict[str, list[str]] = {}
        for line in (modules_dir / "modules.dep").read_text().splitlines():
            target, _, deps = line.partition(":")
            self.path[_module_name(target)] = target
            self.depends[target] = deps.split()
        self.aliases: dict[str, list[str]] = {}
        alias_file = modules_dir / "modules.alias"
        for line in alias_file.read_text().splitlines() if alias_file.exists() else []:
            words = line.split()
            if len(words) == 3 and words[0] == "alias":
                self.aliases.setdefault(words[1], []).append(words[2])

    def resolve(self, name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        """Module files for a name or alias; empty when built in or absent."""
        if (path := self.path.get(name.replace("-", "_"))) is not None:
            return [path]
        if name in seen:
            return []
        return [
            path
            for target in self.aliases.get(name, [])
            for path in self.resolve(target, seen | {name})
        ]

    def closure(self, names: Iterable[str]) -> list[str]:
        queue = [path for name in names for path in self.resolve(name)]
        done: list[str] = []
        while queue:
            path = queue.pop()
            if path in done:
                continue
            done.append(path)
            queue.extend(self.depends.get(path, []))
            for soft in _soft_dependencies(self.modules_dir / path):
                queue.extend(self.resolve(soft))
        return done


def _module_name(path: str) -> str:
    return Path(path).name.split(".ko")[0].replace("-", "_")


def _soft_dependencies(module: Path) -> list[str]:
    """Names in the module's ``softdep=pre: a b post: c`` modinfo entries."""
    data = module.read_bytes()
    if module.name.endswith(".xz"):
        data = lzma.decompress(data)
    names: list[str] = []
    for entry in data.split(b"\0"):
        if entry.startswith(b"softdep="):
            words = entry[len("softdep=") :].decode(errors="replace").split()
            names.extend(word for word in words if not word.endswith(":"))
    return names


def _cpio_newc(directories: list[str], files: dict[str, bytes]) -> bytes:
    """An uncompressed cpio archive in the kernel's initramfs format (newc)."""
    out = io.BytesIO()
    inode = 1

    def entry(name: str, mode: int, data: bytes) -> None:
        nonlocal inode
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out.write(b"070701" + b"".join(b"%08X" % field for field in fields) + encoded)
        out.write(b"\0" * (-out.tell() % 4) + data + b"\0" * (-len(data) % 4))
        inode += 1

    parents = {str(Path(name).parent) for name in files} - {"."}
    for directory in sorted(set(directories) | _with_ancestors(parents)):
        entry(directory, 0o040755, b"")
    for name, data in sorted(files.items()):
        executable = name in ("init", "bin/busybox")
        entry(name, 0o100755 if executable else 0o100644, data)
    entry("TRAILER!!!", 0, b"")
    return out.getvalue()


def _with_ancestors(directories: set[str]) -> set[str]:
    result: set[str] = set()
    for directory in directories:
        path = Path(directory)
        result.update(str(p) for p in [path, *path.parents] if str(p) != ".")
    return result


def _prune(cache_dir: Path, keep: Path) -> None:
    cutoff = time.time() - KEEP_UNUSED_SECONDS
    for image_dir in cache_dir.glob("img-*"):
        done = image_dir / "done"
        if image_dir != keep and (not done.exists() or done.stat().st_mtime < cutoff):
            shutil.rmtree(image_dir, ignore_errors=True)
