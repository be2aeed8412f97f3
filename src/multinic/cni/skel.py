"""The plugin entry point: environment and stdin in, one result or one error out.

A plugin is an object with ``add``, ``delete``, ``check``, ``status`` and
``gc``. :func:`run` is the whole protocol as a pure function of environment
and stdin (so it can be tested and called in-process); :func:`main` binds it to
the real process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from multinic.cni.args import CniArgs, parse_cni_args, validate_container_id, validate_ifname
from multinic.cni.config import NetConf, parse_net_conf
from multinic.cni.errors import (
    CNIError,
    IncompatibleVersionError,
    InternalError,
    InvalidEnvironmentError,
    IOFailureError,
)
from multinic.cni.types import Result
from multinic.cni.version import CHECK_SINCE, GC_SINCE, LATEST_VERSION, at_least, require_supported
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import NoReturn, Protocol
else:
    # Plugin is for type checkers only (nothing checks it at run time), and
    # typing.Protocol would bring typing's import onto every plugin start.
    Protocol = object

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")

#: Environment each verb cannot do without. DEL may lack a netns: the runtime
#: must be able to clean up after the container's namespace is gone.
REQUIRED_ENV: Mapping[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}

#: Verbs that only exist from a given spec version on.
VERB_SINCE: Mapping[str, str] = {"CHECK": CHECK_SINCE, "GC": GC_SINCE, "STATUS": GC_SINCE}


class Request(NamedTuple):
    """One invocation of a plugin, decoded and validated."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: CniArgs
    path: tuple[str, ...]
    config: NetConf
    stdin: bytes


class Plugin(Protocol):
    """What a plugin implements; the executable and the node daemon call the same object."""

    name: str
    supported_versions: tuple[str, ...]

    def add(self, request: Request) -> Result: ...

    def delete(self, request: Request) -> None: ...

    def check(self, request: Request) -> None: ...

    def status(self, request: Request) -> None: ...

    def gc(self, request: Request) -> None: ...


def run(plugin: Plugin, environ: Mapping[str, str], stdin: bytes) -> tuple[int, bytes]:
    """Execute one CNI request; returns (exit status, stdout bytes). Never raises."""
    config_version = ""
    try:
        command = _command(environ)
        if command == "VERSION":
            return 0, _json(version_info(plugin))
        request = parse_request(command, environ, stdin, plugin.supported_versions)
        config_version = request.config.cni_version
        return 0, _dispatch(plugin, request)
    except CNIError as err:
        return 1, _json(err.to_dict(config_version or _latest(plugin)))
    except Exception as exc:  # the boundary: anything unexpected becomes a CNI error
        import traceback  # only on this path: its import is as costly as the whole plugin's

        traceback.print_exc(file=sys.stderr)
        internal = InternalError(f"{plugin.name}: internal error", f"{type(exc).__name__}: {exc}")
        return 1, _json(internal.to_dict(config_version or _latest(plugin)))


def main(plugin: Plugin) -> NoReturn:
    """Run ``plugin`` as this process's CNI plugin and exit."""
    command = os.environ.get("CNI_COMMAND", "")
    try:
        stdin = b"" if command == "VERSION" else sys.stdin.buffer.read()
    except OSError as exc:
        err = IOFailureError("error reading from stdin", str(exc))
        status, out = 1, _json(err.to_dict(_latest(plugin)))
    else:
        status, out = run(plugin, os.environ, stdin)
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    sys.stderr.flush()
    # The answer is out; skip the interpreter's teardown (module and object
    # finalisation), which a short-lived plugin pays on every pod start for nothing.
    os._exit(status)


def version_info(plugin: Plugin) -> dict[str, object]:
    """The VERSION verb's answer."""
    return {"cniVersion": _latest(plugin), "supportedVersions": list(plugin.supported_versions)}


def parse_request(
    command: str, environ: Mapping[str, str], stdin: bytes, supported: tuple[str, ...]
) -> Request:
    """Validate environment and config for ``command`` (anything but VERSION)."""
    missing = [key for key in REQUIRED_ENV[command] if not environ.get(key)]
    if missing:
        raise InvalidEnvironmentError(
            f"required env variables [{','.join(missing)}] missing", f"CNI_COMMAND={command}"
        )
    container_id = environ.get("CNI_CONTAINERID", "")
    ifname = environ.get("CNI_IFNAME", "")
    if container_id or "CNI_CONTAINERID" in REQUIRED_ENV[command]:
        validate_container_id(container_id)
    if ifname or "CNI_IFNAME" in REQUIRED_ENV[command]:
        validate_ifname(ifname)
    config = parse_net_conf(stdin)
    require_supported(config.cni_version, supported)
    since = VERB_SINCE.get(command)
    if since is not None and not at_least(config.cni_version, since):
        raise IncompatibleVersionError(
            f"config version does not allow {command}",
            f"{command} needs cniVersion {since} or later, config is {config.cni_version}",
        )
    return Request(
        command=command,
        container_id=container_id,
        netns=environ.get("CNI_NETNS", ""),
        ifname=ifname,
        args=parse_cni_args(environ.get("CNI_ARGS", "")),
        path=tuple(p for p in environ.get("CNI_PATH", "").split(os.pathsep) if p),
        config=config,
        stdin=stdin,
    )


def _command(environ: Mapping[str, str]) -> str:
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise InvalidEnvironmentError("required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise InvalidEnvironmentError(f"unknown CNI_COMMAND: {command}", f"known: {list(COMMANDS)}")
    return command


def _dispatch(plugin: Plugin, request: Request) -> bytes:
    if request.command == "ADD":
        result = plugin.add(request)
        # Answer in the version the runtime asked for, whatever the plugin built.
        return _json(result.convert(request.config.cni_version).to_dict())
    handlers = {
        "DEL": plugin.delete,
        "CHECK": plugin.check,
        "STATUS": plugin.status,
        "GC": plugin.gc,
    }
    handlers[request.command](request)
    return b""


def _latest(plugin: Plugin) -> str:
    return plugin.supported_versions[-1] if plugin.supported_versions else LATEST_VERSION


def _json(obj: object) -> bytes:
    return json.dumps(obj, indent=1).encode() + b"\n"
