"""Reading what a plugin process left behind: its exit status, stdout and stderr.

Shared by the runtime's executor and by plugins that delegate to other plugins
(IPAM), so it stays on the lean plugin path: no subprocess, no pathlib.
"""

from __future__ import annotations

from multinic.cni import jsontext
from multinic.cni.errors import ErrorCode, PluginError, error_from_dict

#: How much of a failing plugin's output an error message quotes.
QUOTE_LIMIT = 400


def decode_output(plugin_name: str, stdout: bytes) -> object:
    """Decode a successful plugin's JSON output, naming the plugin if it is not JSON."""
    try:
        return jsontext.loads(stdout)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PluginError(
            plugin_name,
            "plugin printed output that is not JSON",
            f"{exc}; output starts {quote(stdout)}",
            code=ErrorCode.DECODING_FAILURE,
        ) from exc


def failure(name: str, status: int, stdout: bytes, stderr: bytes) -> PluginError:
    """The error a plugin reported on stdout, or one describing how it died."""
    try:
        reported = error_from_dict(jsontext.loads(stdout))
    except (ValueError, UnicodeDecodeError):
        reported = None
    if reported is not None:
        return PluginError(name, reported.msg, reported.details, code=reported.code)
    return PluginError(
        name,
        f"plugin {describe_exit(status)} without a CNI error object",
        f"stdout: {quote(stdout)}; stderr: {quote(stderr)}",
        code=ErrorCode.INTERNAL,
    )


def describe_exit(status: int) -> str:
    """``exited 3`` or ``was killed by SIGKILL``, from a returncode-style status."""
    if status >= 0:
        return f"exited {status}"
    import signal  # only a killed plugin's error needs it, not every plugin start

    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


def quote(data: bytes) -> str:
    """A plugin's output, shortened and quoted for an error message."""
    text = data.decode(errors="replace").strip()
    return repr(text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "...")
