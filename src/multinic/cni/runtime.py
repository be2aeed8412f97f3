"""The runtime side of CNI (libcni's job): run plugin chains, cache results, GC, STATUS.

Behaviour follows libcni so multinic can replace it under a container runtime,
with two deliberate differences, both so that nothing is left behind:

* a failed ADD is rolled back by a DEL of the whole chain before the error is
  returned (libcni leaves that to its caller, and callers forget);
* GC deletes a stale attachment with the config it was added with (from the
  cache) rather than the current one, so a changed conflist still cleans up.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from multinic.cni.args import CniArgs, format_cni_args, validate_container_id, validate_ifname
from multinic.cni.cache import (
    DEFAULT_CACHE_DIR,
    NO_CAPABILITY_ARGS,
    CachedAttachment,
    ResultCache,
    cached_result,
)
from multinic.cni.config import (
    VALID_ATTACHMENTS_KEYS,
    Attachment,
    NetworkConfigList,
    PluginConfig,
    parse_network_config,
    parse_network_config_list,
)
from multinic.cni.errors import CNIError, DecodingError, IncompatibleVersionError, PluginError
from multinic.cni.invoke import PluginExecutor
from multinic.cni.outcome import decode_output
from multinic.cni.types import Result
from multinic.cni.version import CHECK_SINCE, GC_SINCE, LATEST_VERSION, at_least


class RuntimeConf(NamedTuple):
    """Who is being attached: the container, its namespace, the interface name."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: CniArgs = ()
    capability_args: Mapping[str, Any] = NO_CAPABILITY_ARGS


class VersionInfo(NamedTuple):
    """A plugin's answer to VERSION."""

    cni_version: str
    supported_versions: tuple[str, ...]


class Runtime:
    """Executes network config lists against plugins found on a search path."""

    def __init__(
        self,
        plugin_path: Sequence[Path],
        cache_dir: Path = DEFAULT_CACHE_DIR,
        executor: PluginExecutor | None = None,
    ) -> None:
        self.plugin_path = tuple(plugin_path)
        self.cache = ResultCache(cache_dir)
        self.executor = executor if executor is not None else PluginExecutor()

    # --- verbs -------------------------------------------------------------------

    def add(self, net: NetworkConfigList, rt: RuntimeConf) -> Result:
        """ADD every plugin in order, each given the previous result; cache the last."""
        version = net.negotiated_version()
        _validate_attachment(rt)
        result: Result | None = None
        try:
            for plugin in net.plugins:
                result = self._add_one(plugin, net, version, result, rt)
            final = (result or Result(version)).convert(version)
            self.cache.save(self._cache_entry(net, rt, final))
        except CNIError as err:
            self._roll_back(net, version, result, rt, err)
            raise
        return final

    def check(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK every plugin in order against the cached result."""
        version = net.negotiated_version()
        if not at_least(version, CHECK_SINCE):
            raise IncompatibleVersionError(
                f"configuration version {version!r} does not support the CHECK command",
                f"CHECK needs cniVersion {CHECK_SINCE} or later",
            )
        if net.disable_check:
            return
        _validate_attachment(rt)
        prev = self.cached_result(net, rt)
        for plugin in net.plugins:
            self._call(plugin, "CHECK", self._stdin(plugin, net.name, version, prev, rt), rt)

    def delete(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """DEL every plugin in reverse order with the cached result, then drop the cache."""
        version = net.negotiated_version()
        _validate_attachment(rt)
        prev: Result | None = None
        if at_least(version, CHECK_SINCE):
            try:
                prev = self.cached_result(net, rt)
            except CNIError:
                # An unreadable cache must not make the attachment undeletable.
                self.cache.remove(net.name, rt.container_id, rt.ifname)
        self._del_chain(net, version, prev, rt, best_effort=False)
        self.cache.remove(net.name, rt.container_id, rt.ifname)

    def gc(self, net: NetworkConfigList, valid: Sequence[Attachment] | None) -> None:
        """DEL cached attachments of ``net`` not in ``valid``, then GC every plugin.

        ``valid=None`` (what cnitool sends) means every cached attachment is stale
        and plugins get no valid-attachments list.
        """
        if net.disable_gc:
            return
        keep = set(valid or ())
        failures = []
        for entry in list(self.cache.attachments(net.name)):
            if Attachment(entry.container_id, entry.ifname) in keep:
                continue
            try:
                self.delete(self._config_of(entry, net), _runtime_conf_of(entry))
            except CNIError as err:
                failures.append(
                    f"failed to delete stale attachment {entry.container_id} {entry.ifname}: {err}"
                )
        version = net.negotiated_version()
        if at_least(version, GC_SINCE):
            failures.extend(self._gc_plugins(net, version, valid))
        if failures:
            raise CNIError("garbage collection incomplete", "\n".join(failures))

    def status(self, net: NetworkConfigList) -> None:
        """STATUS every plugin; the first that is not ready raises (codes 50, 51, ...)."""
        version = net.negotiated_version()
        if not at_least(version, GC_SINCE):
            return
        for plugin in net.plugins:
            conf = _injected(plugin, net.name, version)
            self._call(plugin, "STATUS", _encode(conf), _NO_ATTACHMENT)

    def version_info(self, plugin_type: str) -> VersionInfo:
        """Ask a plugin which spec versions it supports."""
        stdin = _encode({"cniVersion": LATEST_VERSION})
        env = self._env("VERSION", _NO_ATTACHMENT)
        out = self.executor.call(plugin_type, self.plugin_path, env, stdin)
        obj = decode_output(plugin_type, out)
        if not isinstance(obj, dict) or not isinstance(obj.get("supportedVersions"), list):
            raise PluginError(plugin_type, "VERSION output has no supportedVersions", code=6)
        versions = tuple(str(v) for v in obj["supportedVersions"])
        return VersionInfo(str(obj.get("cniVersion", "")), versions)

    def validate(self, net: NetworkConfigList) -> frozenset[str]:
        """Check every plugin exists and supports the list's version; return their capabilities."""
        version = net.negotiated_version()
        problems = []
        for plugin in net.plugins:
            try:
                info = self.version_info(plugin.type)
            except CNIError as err:
                problems.append(str(err))
                continue
            if version not in info.supported_versions:
                problems.append(f"plugin {plugin.type} does not support config version {version}")
        if problems:
            raise IncompatibleVersionError(
                f"network {net.name!r} is not usable", "; ".join(problems)
            )
        return frozenset().union(*(p.capabilities for p in net.plugins))

    def cached_result(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        """The cached result of the attachment, in the list's version, or None."""
        data = self.cache.load_raw(net.name, rt.container_id, rt.ifname)
        if data is None:
            return None
        return cached_result(data, net.negotiated_version())

    # --- helpers -----------------------------------------------------------------

    def _add_one(
        self,
        plugin: PluginConfig,
        net: NetworkConfigList,
        version: str,
        prev: Result | None,
        rt: RuntimeConf,
    ) -> Result:
        out = self._call(plugin, "ADD", self._stdin(plugin, net.name, version, prev, rt), rt)
        obj = decode_output(plugin.type, out)
        try:
            declared = obj.get("cniVersion") if isinstance(obj, dict) else None
            return Result.from_dict(obj, str(declared or version))
        except CNIError as err:
            raise PluginError(
                plugin.type,
                "plugin printed an invalid result",
                str(err),
                code=DecodingError.default_code,
            ) from err

    def _roll_back(
        self,
        net: NetworkConfigList,
        version: str,
        partial: Result | None,
        rt: RuntimeConf,
        err: CNIError,
    ) -> None:
        """DEL every plugin in reverse, best effort: one failing DEL must not stop the rest."""
        failures = self._del_chain(net, version, partial, rt, best_effort=True)
        self.cache.remove(net.name, rt.container_id, rt.ifname)
        if failures:
            note = "rollback DEL also failed: " + "; ".join(failures)
            err.details = f"{err.details}; {note}" if err.details else note

    def _del_chain(
        self,
        net: NetworkConfigList,
        version: str,
        prev: Result | None,
        rt: RuntimeConf,
        *,
        best_effort: bool,
    ) -> list[str]:
        """DEL the plugins in reverse; the first failure raises unless ``best_effort``,
        which goes on and returns the failures instead."""
        failures = []
        for plugin in reversed(net.plugins):
            try:
                self._call(plugin, "DEL", self._stdin(plugin, net.name, version, prev, rt), rt)
            except CNIError as err:
                if not best_effort:
                    raise
                failures.append(str(err))
        return failures

    @staticmethod
    def _cache_entry(net: NetworkConfigList, rt: RuntimeConf, final: Result) -> CachedAttachment:
        return CachedAttachment(
            network_name=net.name,
            container_id=rt.container_id,
            ifname=rt.ifname,
            config=net.source_bytes,
            netns=rt.netns,
            cni_args=rt.args,
            capability_args=rt.capability_args,
            result=final.to_dict(),
        )

    def _gc_plugins(
        self, net: NetworkConfigList, version: str, valid: Sequence[Attachment] | None
    ) -> list[str]:
        failures = []
        for plugin in net.plugins:
            conf = _injected(plugin, net.name, version)
            if valid is not None:
                listed = [{"containerID": a.container_id, "ifname": a.ifname} for a in valid]
                for key in VALID_ATTACHMENTS_KEYS:
                    conf[key] = listed
            try:
                self._call(plugin, "GC", _encode(conf), _NO_ATTACHMENT)
            except CNIError as err:
                failures.append(f"failed to GC plugin {plugin.type}: {err}")
        return failures

    def _stdin(
        self, plugin: PluginConfig, name: str, version: str, prev: Result | None, rt: RuntimeConf
    ) -> bytes:
        conf = _injected(plugin, name, version)
        if prev is not None:
            conf["prevResult"] = prev.convert(version).to_dict()
        runtime_config = {
            cap: rt.capability_args[cap]
            for cap in sorted(plugin.capabilities)
            if cap in rt.capability_args
        }
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
        return _encode(conf)

    def _call(self, plugin: PluginConfig, command: str, stdin: bytes, rt: RuntimeConf) -> bytes:
        return self.executor.call(plugin.type, self.plugin_path, self._env(command, rt), stdin)

    def _env(self, command: str, rt: RuntimeConf) -> dict[str, str]:
        # All six are always set, so nothing leaks in from the runtime's own environment.
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id,
            "CNI_NETNS": rt.netns,
            "CNI_IFNAME": rt.ifname,
            "CNI_ARGS": format_cni_args(rt.args),
            "CNI_PATH": ":".join(str(p) for p in self.plugin_path),
        }

    def _config_of(self, entry: CachedAttachment, current: NetworkConfigList) -> NetworkConfigList:
        inlined = current.raw.get("plugins")
        if not isinstance(inlined, list) or len(inlined) != len(current.plugins):
            # Plugins from <dir>/<name>/ are not in the cached bytes (nor in libcni's).
            return current
        for parse in (parse_network_config_list, parse_network_config):
            try:
                cached = parse(entry.config)
            except CNIError:
                continue
            if cached.name == current.name:
                return cached
        print(
            f"multinic: cached config of {entry.container_id}/{entry.ifname} is unusable; "
            "deleting with the current one",
            file=sys.stderr,
        )
        return current


#: GC and STATUS concern no attachment: libcni sends empty CNI_CONTAINERID/NETNS/IFNAME.
_NO_ATTACHMENT = RuntimeConf("", "", "")


def _validate_attachment(rt: RuntimeConf) -> None:
    # Both name the cache file: an id like "../x" must never reach a path.
    validate_container_id(rt.container_id)
    validate_ifname(rt.ifname)


def _runtime_conf_of(entry: CachedAttachment) -> RuntimeConf:
    return RuntimeConf(
        container_id=entry.container_id,
        netns=entry.netns,
        ifname=entry.ifname,
        args=entry.cni_args,
        capability_args=entry.capability_args,
    )


def _injected(plugin: PluginConfig, name: str, version: str) -> dict[str, Any]:
    """The plugin's config as written, with the list's name and version, as libcni injects."""
    return {**plugin.raw, "name": name, "cniVersion": version}


def _encode(conf: Mapping[str, Any]) -> bytes:
    return json.dumps(conf, separators=(",", ":")).encode()
