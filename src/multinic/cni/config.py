"""Network configurations: the list a runtime loads and the config a plugin receives.

Both keep the JSON object exactly as written (``raw``) next to the typed
fields read from it, so fields this module does not know pass through to
plugins untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from multinic.cni import jsontext
from multinic.cni.errors import DecodingError, IncompatibleVersionError, InvalidConfigError
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS, highest_common, parse_version
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pathlib is not worth its import time on the plugin path
    from pathlib import Path
    from typing import Any

#: SPEC.md: a network name starts alphanumeric, then alphanumerics, '_', '.', '-'.
NETWORK_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
#: The spec sets no length, but the name is a directory (host-local's <dataDir>/<name>,
#: <confdir>/<name>/) and starts cache file names: longer than NAME_MAX it fails half-way.
MAX_NETWORK_NAME = 255

#: GC's list of attachments to keep; the first key is SPEC 1.1.0's, the second
#: the name used by an earlier draft that some runtimes still send.
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


class Attachment(NamedTuple):
    """One network attachment of a container: the key GC and the cache use."""

    container_id: str
    ifname: str


class PluginConfig(NamedTuple):
    """One entry of a config list's ``plugins`` array, as written."""

    raw: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw["type"])

    @property
    def capabilities(self) -> frozenset[str]:
        """Capabilities the plugin declares as enabled (``"capabilities": {"x": true}``)."""
        caps = self.raw.get("capabilities")
        if not isinstance(caps, dict):
            return frozenset()
        return frozenset(name for name, enabled in caps.items() if enabled is True)


class NetworkConfigList(NamedTuple):
    """A network configuration list (a ``.conflist``, or a ``.conf`` wrapped as one)."""

    raw: Mapping[str, Any]
    name: str
    cni_version: str
    cni_versions: tuple[str, ...]
    disable_check: bool
    disable_gc: bool
    load_only_inlined_plugins: bool
    plugins: tuple[PluginConfig, ...]
    source: Path | None = None
    source_bytes: bytes = b""

    def negotiated_version(self, supported: Iterable[str] = SUPPORTED_VERSIONS) -> str:
        """The version to run this list at: the newest of ``cniVersions`` and
        ``cniVersion`` that ``supported`` includes (SPEC 1.1.0, section 1)."""
        candidates = [*self.cni_versions, *([self.cni_version] if self.cni_version else [])]
        return highest_common(candidates, supported)


class NetConf(NamedTuple):
    """The config object a plugin receives on stdin, with the keys every plugin reads."""

    raw: Mapping[str, Any]
    cni_version: str
    name: str
    type: str
    prev_result: Result | None
    runtime_config: Mapping[str, Any]
    valid_attachments: tuple[Attachment, ...] | None

    @property
    def ipam(self) -> Mapping[str, Any] | None:
        ipam = self.raw.get("ipam")
        return ipam if isinstance(ipam, dict) else None


def decode_json_object(data: bytes | str | Mapping[str, Any], what: str) -> dict[str, Any]:
    """Decode JSON text into an object, or raise code 6 naming ``what``."""
    if isinstance(data, Mapping):
        return dict(data)
    try:
        obj = jsontext.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodingError(f"cannot decode {what}", str(exc)) from exc
    if not isinstance(obj, dict):
        raise DecodingError(f"cannot decode {what}", "top level is not a JSON object")
    return obj


def parse_network_config_list(
    data: bytes | str | Mapping[str, Any],
    source: Path | None = None,
    extra_plugins: Iterable[Mapping[str, Any]] = (),
) -> NetworkConfigList:
    """Parse and validate a ``.conflist``.

    ``extra_plugins`` are appended after the inlined ones (libcni 1.3 loads them
    from ``<dir>/<name>/*.conf`` unless ``loadOnlyInlinedPlugins`` is set).
    """
    where = _describe(source, "network config list")
    obj = decode_json_object(data, where)
    name = _network_name(obj, where)
    cni_versions = _versions_list(obj, where)
    cni_version = _list_version(obj, where, required=not cni_versions)
    entries = obj.get("plugins", [])
    if not isinstance(entries, list):
        raise InvalidConfigError(f"invalid {where}", "'plugins' must be a list")
    entries = [*entries, *extra_plugins]
    if not entries:
        raise InvalidConfigError(f"invalid {where}", "no plugins in list")
    return NetworkConfigList(
        raw=obj,
        name=name,
        cni_version=cni_version,
        cni_versions=cni_versions,
        disable_check=_flag(obj, "disableCheck", where),
        disable_gc=_flag(obj, "disableGC", where),
        load_only_inlined_plugins=_flag(obj, "loadOnlyInlinedPlugins", where),
        plugins=tuple(_plugin(entry, n, where) for n, entry in enumerate(entries)),
        source=source,
        source_bytes=_original_bytes(data),
    )


def parse_network_config(
    data: bytes | str | Mapping[str, Any], source: Path | None = None
) -> NetworkConfigList:
    """Parse a single-plugin ``.conf`` and wrap it as a list of one, as libcni does."""
    where = _describe(source, "network config")
    obj = decode_json_object(data, where)
    wrapped = {
        "cniVersion": _list_version(obj, where, required=True),
        "name": _network_name(obj, where),
        "plugins": [obj],
    }
    if "disableCheck" in obj:
        wrapped["disableCheck"] = obj["disableCheck"]
    return parse_network_config_list(wrapped, source)


def _original_bytes(data: bytes | str | Mapping[str, Any]) -> bytes:
    # The result cache records the config as the runtime read it, byte for byte.
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data, separators=(",", ":")).encode()


def parse_net_conf(data: bytes | str | Mapping[str, Any]) -> NetConf:
    """Parse the config a plugin got on stdin (validation a plugin entry does for every verb)."""
    obj = decode_json_object(data, "network config")
    version = obj.get("cniVersion")
    if version is None:
        raise IncompatibleVersionError(
            "network config has no cniVersion", "spec 0.1.0 is implied and not supported"
        )
    parse_version(version)
    name = _network_name(obj, "network config")
    plugin_type = obj.get("type", "")
    if not isinstance(plugin_type, str):
        raise InvalidConfigError("invalid network config", "'type' must be a string")
    runtime_config = obj.get("runtimeConfig", {})
    if not isinstance(runtime_config, dict):
        raise InvalidConfigError("invalid network config", "'runtimeConfig' must be an object")
    prev = obj.get("prevResult")
    return NetConf(
        raw=obj,
        cni_version=version,
        name=name,
        type=plugin_type,
        prev_result=None if prev is None else Result.from_dict(prev, version),
        runtime_config=runtime_config,
        valid_attachments=_valid_attachments(obj),
    )


def _valid_attachments(obj: Mapping[str, Any]) -> tuple[Attachment, ...] | None:
    for key in VALID_ATTACHMENTS_KEYS:
        if key in obj:
            return parse_attachments(obj[key], key)
    return None


def parse_attachments(value: object, where: str) -> tuple[Attachment, ...]:
    """Decode ``[{"containerID": ..., "ifname": ...}, ...]``."""
    if not isinstance(value, list):
        raise InvalidConfigError("invalid network config", f"{where!r} must be a list")
    out = []
    for n, item in enumerate(value):
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise InvalidConfigError(
                "invalid network config", f"{where}[{n}] needs string containerID and ifname"
            )
        out.append(Attachment(cid, ifname))
    return tuple(out)


def _describe(source: Path | None, what: str) -> str:
    return f"{what} {str(source)!r}" if source is not None else what


def _network_name(obj: Mapping[str, Any], where: str) -> str:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidConfigError(f"invalid {where}", "'name' is missing")
    if not NETWORK_NAME_RE.fullmatch(name):
        raise InvalidConfigError(
            f"invalid {where}",
            f"name {name!r} must start with a letter or digit, then letters, digits, '_', '.', '-'",
        )
    if len(name) > MAX_NETWORK_NAME:
        raise InvalidConfigError(
            f"invalid {where}",
            f"name has {len(name)} characters; it names a directory: at most {MAX_NETWORK_NAME}",
        )
    return name


def _list_version(obj: Mapping[str, Any], where: str, *, required: bool) -> str:
    version = obj.get("cniVersion")
    if version is None:
        if required:
            raise IncompatibleVersionError(f"invalid {where}", "'cniVersion' is missing")
        return ""
    parse_version(version)
    return str(version)


def _versions_list(obj: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = obj.get("cniVersions")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidConfigError(f"invalid {where}", "'cniVersions' must be a list of strings")
    for version in value:
        parse_version(version)
    return tuple(value)


def _flag(obj: Mapping[str, Any], key: str, where: str) -> bool:
    # libcni also accepts the strings "true"/"false" here; configs in the wild use both.
    value = obj.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidConfigError(f"invalid {where}", f"{key!r} must be true or false, not {value!r}")


def _plugin(entry: object, index: int, where: str) -> PluginConfig:
    if not isinstance(entry, dict):
        raise InvalidConfigError(f"invalid {where}", f"plugins[{index}] is not an object")
    plugin_type = entry.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        raise InvalidConfigError(f"invalid {where}", f"plugins[{index}] has no 'type'")
    if "/" in plugin_type or plugin_type in (".", ".."):
        raise InvalidConfigError(
            f"invalid {where}", f"plugins[{index}].type {plugin_type!r} is not a plugin name"
        )
    caps = entry.get("capabilities")
    if caps is not None and not isinstance(caps, dict):
        raise InvalidConfigError(
            f"invalid {where}", f"plugins[{index}].capabilities is not an object"
        )
    return PluginConfig(entry)
