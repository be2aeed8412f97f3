"""Reading a plugin's own config fields, with errors that name the plugin and the field.

The reference plugins decode their config into Go structs: a field of the wrong
type is a decoding error naming it. These readers give the same guarantee
without a schema library (import cost on every pod start).
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address

from multinic.cni.args import ifname_problem
from multinic.cni.errors import InvalidConfigError
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_MISSING = object()


class Fields:
    """Typed access to one JSON object of a config: the plugin's, or a nested section."""

    def __init__(self, obj: Mapping[str, Any], where: str) -> None:
        self.obj = obj
        self.where = where

    def _get(self, key: str, expected: type | tuple[type, ...], what: str) -> Any:
        value = self.obj.get(key, _MISSING)
        if value is _MISSING or value is None:
            return None
        # bool is an int in Python, never in JSON's sense of a number.
        if isinstance(value, bool) and bool not in _as_tuple(expected):
            raise self.error(key, f"must be {what}, not a boolean")
        if not isinstance(value, expected):
            raise self.error(key, f"must be {what}, not {type(value).__name__}")
        return value

    def error(self, key: str, problem: str) -> InvalidConfigError:
        """A config error naming this object and ``key``."""
        return InvalidConfigError(f"{self.where}: field {key!r} {problem}")

    def string(self, key: str, default: str = "") -> str:
        value = self._get(key, str, "a string")
        if value is None:
            return default
        # No name, path or mode holds one; the kernel and the file system refuse it.
        if "\0" in value:
            raise self.error(key, "must not contain a NUL character")
        return str(value)

    def required_string(self, key: str) -> str:
        value = self.string(key)
        if not value:
            raise self.error(key, "is required")
        return value

    def link_name(self, key: str, default: str = "") -> str:
        """A network interface name the kernel takes ("" when absent): a bad one
        is the config's error (code 7), not a netlink failure half-way through ADD."""
        value = self.string(key) or default
        problem = ifname_problem(value) if value else ""
        if problem:
            raise self.error(key, f"is not a valid interface name ({problem}): {value!r}")
        return value

    def path(self, key: str) -> str:
        """An absolute path, or "" when absent: a relative one would depend on the
        runtime's working directory, which nobody configures."""
        value = self.string(key)
        if value and not value.startswith("/"):
            raise self.error(key, f"must be an absolute path, not {value!r}")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        low: int | None = None,
        high: int | None = None,
    ) -> int | None:
        value = self._get(key, int, "an integer")
        if value is None:
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"must be between {low} and {high}, not {value}")
        return int(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def mapping(self, key: str) -> Fields:
        value = self._get(key, dict, "an object")
        return Fields(value or {}, f"{self.where}.{key}")

    def mapping_of_strings(self, key: str) -> dict[str, str]:
        section = self.mapping(key)
        values = {}
        for name, value in section.obj.items():
            if value is None:  # string() reads null as absent; here it is a value
                raise section.error(name, "is null, not a string")
            values[name] = section.string(name)
        return values

    def address(self, key: str) -> IPv4Address | IPv6Address | None:
        text = self.string(key)
        if not text:
            return None
        try:
            return ip_address(text)
        except ValueError as exc:
            raise self.error(key, f"is not an IP address: {text!r}") from exc


def plugin_fields(raw: Mapping[str, Any], plugin_type: str) -> Fields:
    """The reader for a plugin's top-level config, naming the plugin in errors.

    An ``ipam`` that is not an object is refused here, for every plugin: read
    as "no IPAM", it would give the pod an interface without its addresses.
    """
    fields = Fields(raw, plugin_type)
    fields.mapping("ipam")
    return fields


def _as_tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)
