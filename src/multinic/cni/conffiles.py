"""Reading network configurations from a config dir (``/etc/cni/net.d``) as libcni does.

Files are read in name order: ``.conflist`` files first, then single-plugin
``.conf``/``.json`` files, and the first whose ``name`` matches wins. Unless a
list sets ``loadOnlyInlinedPlugins``, ``<dir>/<name>/*.conf`` adds plugins to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from multinic.cni.config import (
    NETWORK_NAME_RE,
    NetworkConfigList,
    decode_json_object,
    parse_network_config,
    parse_network_config_list,
)
from multinic.cni.errors import CNIError, ConfigNotFoundError, IOFailureError

DEFAULT_CONFIG_DIR = Path("/etc/cni/net.d")
LIST_EXTENSIONS = (".conflist",)
SINGLE_EXTENSIONS = (".conf", ".json")


def config_files(directory: Path, extensions: Iterable[str]) -> list[Path]:
    """Regular files in ``directory`` with one of ``extensions``, sorted by name."""
    wanted = tuple(extensions)
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise IOFailureError(f"cannot read config dir {directory}", str(exc)) from exc
    return [p for p in entries if p.suffix in wanted and p.is_file()]


def load_all(directory: Path) -> tuple[list[NetworkConfigList], list[CNIError]]:
    """Every network in ``directory`` in libcni's order, and the files that failed to parse."""
    networks: list[NetworkConfigList] = []
    problems: list[CNIError] = []
    for path in config_files(directory, LIST_EXTENSIONS + SINGLE_EXTENSIONS):
        try:
            networks.append(load_file(path))
        except CNIError as err:
            problems.append(err)
    networks.sort(key=lambda net: net.source is None or net.source.suffix not in LIST_EXTENSIONS)
    return networks, problems


def load_network(directory: Path, name: str) -> NetworkConfigList:
    """The network called ``name``; a broken unrelated file does not hide it."""
    networks, problems = load_all(directory)
    for network in networks:
        if network.name == name:
            return network
    found = sorted({n.name for n in networks})
    details = f"networks found: {found}" if found else "no network configurations found"
    if problems:
        details += "; files that failed to parse: " + "; ".join(str(p) for p in problems)
    raise ConfigNotFoundError(f"no net configuration with name {name!r} in {directory}", details)


def load_file(path: Path) -> NetworkConfigList:
    """Parse one config file by its extension."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IOFailureError(f"cannot read {path}", str(exc)) from exc
    if path.suffix not in LIST_EXTENSIONS:
        return parse_network_config(data, path)
    head = decode_json_object(data, f"network config list {str(path)!r}")
    extra: list[dict[str, Any]] = []
    name = head.get("name")
    # Only a valid name may become a directory: "../x" must not read outside.
    if not _inlined_only(head) and isinstance(name, str) and NETWORK_NAME_RE.fullmatch(name):
        extra = _directory_plugins(path.parent / name)
    return parse_network_config_list(data, path, extra_plugins=extra)


def _inlined_only(head: dict[str, Any]) -> bool:
    value = head.get("loadOnlyInlinedPlugins", False)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _directory_plugins(directory: Path) -> list[dict[str, Any]]:
    return [
        decode_json_object(_read(path), f"plugin config {str(path)!r}")
        for path in config_files(directory, (".conf",))
    ]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IOFailureError(f"cannot read {path}", str(exc)) from exc
