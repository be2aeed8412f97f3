"""Delegating to an IPAM plugin, as the spec says (SPEC.md, "Delegated plugins").

The ``ipam`` section's ``type`` is run with the same environment and the same
network configuration, with CNI_COMMAND set to the verb. When that type is one
of multinic's own plugins it is called in-process, through the same entry
(:func:`multinic.cni.skel.run`) its executable uses; any other type is
executed from CNI_PATH.
"""

from __future__ import annotations

import os

from multinic.cni.args import format_cni_args
from multinic.cni.errors import InvalidConfigError
from multinic.cni.outcome import decode_output, failure
from multinic.cni.skel import Request, run
from multinic.cni.spawn import find_executable, run_executable
from multinic.cni.types import Result
from multinic.plugins.registry import is_ours, load_plugin


def ipam_type(request: Request) -> str:
    """The IPAM plugin a config names; a clear error when it names none."""
    ipam = request.config.ipam
    plugin_type = ipam.get("type") if ipam is not None else None
    if not isinstance(plugin_type, str) or not plugin_type:
        raise InvalidConfigError(
            f"{request.config.type}: network {request.config.name!r} needs an ipam section",
            'expected "ipam": {"type": "..."}',
        )
    return plugin_type


def ipam_add(request: Request) -> Result:
    """Allocate addresses for ``request`` from its IPAM plugin."""
    plugin_type = ipam_type(request)
    output = delegate(plugin_type, "ADD", request)
    return Result.from_dict(decode_output(plugin_type, output), request.config.cni_version)


def ipam_del(request: Request) -> None:
    """Release what ``request``'s IPAM plugin holds for this attachment."""
    delegate(ipam_type(request), "DEL", request)


def ipam_check(request: Request) -> None:
    """Ask ``request``'s IPAM plugin whether its reservation is still in place."""
    delegate(ipam_type(request), "CHECK", request)


def delegate(plugin_type: str, command: str, request: Request) -> bytes:
    """Run plugin ``plugin_type`` for ``command`` with ``request``'s config; its stdout."""
    env = delegate_env(command, request)
    if is_ours(plugin_type):
        status, stdout = run(load_plugin(plugin_type), env, request.stdin)
        stderr = b""
    else:
        path = find_executable(plugin_type, request.path)
        if path is None:
            raise InvalidConfigError(
                f"failed to find plugin {plugin_type!r}", f"searched CNI_PATH {list(request.path)}"
            )
        status, stdout, stderr = run_executable(path, {**os.environ, **env}, request.stdin)
    if status != 0:
        raise failure(plugin_type, status, stdout, stderr)
    return stdout


def delegate_env(command: str, request: Request) -> dict[str, str]:
    """The CNI_* environment a delegated plugin sees: the caller's, with ``command``."""
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": request.container_id,
        "CNI_NETNS": request.netns,
        "CNI_IFNAME": request.ifname,
        "CNI_ARGS": format_cni_args(request.args),
        "CNI_PATH": os.pathsep.join(request.path),
    }
