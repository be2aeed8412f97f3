"""The CNI error codes and the exception tree that carries them.

Inside multinic a failure is one of these exceptions; at a process boundary it
becomes the spec's error object ``{cniVersion, code, msg, details}``.
"""

from __future__ import annotations

from enum import IntEnum

from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


class ErrorCode(IntEnum):
    """Well-known error codes of the CNI specification (SPEC.md, "Error")."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    # Not in the spec's table; libcni's types package uses it for "internal".
    INTERNAL = 999


#: Codes 0-99 are reserved by the spec; plugins may use 100 and above.
FIRST_PLUGIN_CODE = 100


class CNIError(Exception):
    """A failure that can be reported as a CNI error object."""

    default_code: int = ErrorCode.INTERNAL

    def __init__(self, msg: str, details: str = "", *, code: int | None = None) -> None:
        super().__init__(msg)
        self.code = self.default_code if code is None else code
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg

    def to_dict(self, cni_version: str) -> dict[str, Any]:
        """The spec's error object; ``details`` is left out when empty, as libcni does."""
        obj: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            obj["details"] = self.details
        return obj


class IncompatibleVersionError(CNIError):
    """Code 1: the config's CNI version is not one the plugin or runtime supports."""

    default_code = ErrorCode.INCOMPATIBLE_VERSION


class UnsupportedFieldError(CNIError):
    """Code 2: a config field the plugin does not support; details name the field."""

    default_code = ErrorCode.UNSUPPORTED_FIELD


class UnknownContainerError(CNIError):
    """Code 3: the container is unknown or does not exist."""

    default_code = ErrorCode.UNKNOWN_CONTAINER


class InvalidEnvironmentError(CNIError):
    """Code 4: a CNI_* environment variable is missing or invalid; details name it."""

    default_code = ErrorCode.INVALID_ENVIRONMENT


class IOFailureError(CNIError):
    """Code 5: reading stdin or writing stdout (or a cache file) failed."""

    default_code = ErrorCode.IO_FAILURE


class DecodingError(CNIError):
    """Code 6: the network config or a result could not be decoded."""

    default_code = ErrorCode.DECODING_FAILURE


class InvalidConfigError(CNIError):
    """Code 7: the network config decoded but is not valid."""

    default_code = ErrorCode.INVALID_NETWORK_CONFIG


class ConfigNotFoundError(InvalidConfigError):
    """Code 7: no network configuration with the requested name in the config dir."""


class TryAgainLaterError(CNIError):
    """Code 11: a transient condition (a lock, a datastore); the runtime should retry."""

    default_code = ErrorCode.TRY_AGAIN_LATER


class KubeUnavailableError(TryAgainLaterError):
    """Code 11: the Kubernetes API server did not answer (unreachable, timed out, overloaded)."""


class KubeRequestError(IOFailureError):
    """Code 5: the Kubernetes API server refused a request (forbidden, invalid, conflict)."""


class PodNotFoundError(UnknownContainerError):
    """Code 3: the pod named by K8S_POD_NAMESPACE/K8S_POD_NAME does not exist (or was replaced)."""


class NetworkNotFoundError(InvalidConfigError):
    """Code 7: a network a pod selects (a NetworkAttachmentDefinition or config) does not exist."""


class AnnotationError(InvalidConfigError):
    """Code 7: a pod's network selection annotation is malformed or asks for something invalid."""


class IsolationError(InvalidConfigError):
    """Code 7: namespace isolation forbids the pod a network from another namespace."""


class PluginNotAvailableError(CNIError):
    """Code 50: STATUS says the plugin cannot serve ADD requests."""

    default_code = ErrorCode.PLUGIN_NOT_AVAILABLE


class LimitedConnectivityError(CNIError):
    """Code 51: STATUS says new attachments would have limited connectivity."""

    default_code = ErrorCode.LIMITED_CONNECTIVITY


class InternalError(CNIError):
    """Code 999: an unexpected failure inside a plugin or the runtime."""

    default_code = ErrorCode.INTERNAL


class PluginError(CNIError):
    """A failure reported by (or about) an executed plugin, with the plugin named."""

    def __init__(self, plugin: str, msg: str, details: str = "", *, code: int) -> None:
        super().__init__(msg, details, code=code)
        self.plugin = plugin

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} failed (code {self.code}): {super().__str__()}"


def error_from_dict(obj: object) -> CNIError | None:
    """Decode a spec error object, or None when ``obj`` is not one."""
    if not isinstance(obj, dict):
        return None
    code, msg = obj.get("code"), obj.get("msg", "")
    if not isinstance(code, int) or isinstance(code, bool) or code <= 0:
        return None
    details = obj.get("details", "")
    return CNIError(
        msg if isinstance(msg, str) else str(msg),
        details if isinstance(details, str) else str(details),
        code=code,
    )
