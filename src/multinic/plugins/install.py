"""Writing our plugins into a CNI bin dir as self-contained executables.

A runtime runs plugins with a bare environment (no PATH, no VIRTUAL_ENV), so
each executable names its interpreter by absolute path and puts the directory
holding the ``multinic`` package on ``sys.path`` itself: for a normal install
(``pip install`` into a venv or the system, or ``--target``) that is the
site-packages directory the package was installed into, so the executables
depend on that installation only. The directory is appended, after the
standard library: nothing installed beside multinic can shadow a standard
module, and the standard imports do not look there first. ``-I`` keeps the
caller's PYTHON* variables and the current directory out; ``-S`` skips
``site``, which costs milliseconds on every pod start and is not needed:
the plugin path imports nothing outside the standard library and multinic.
The two flags are written as one, ``-IS``: Linux hands everything after the
interpreter on a ``#!`` line to it as a single argument, and Python refuses
``"-I -S"``.

The script turns the cyclic garbage collector off before anything is imported:
a plugin process serves one request and ends with ``os._exit``, so the
collector would only walk, again and again, the objects its imports create
(about 1.3 ms of every start); the little cyclic garbage one request leaves
goes with the process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection

from multinic.plugins.registry import PLUGINS

#: Every executable a node's CNI bin dir gets: the plugins, the shim that
#: forwards a runtime's calls to the node daemon, and the meta plugin's thin
#: mode. Neither of the last two is in the registry: the daemon never runs
#: them in-process (the shim only forwards; the meta plugin is the daemon).
EXECUTABLES = {**PLUGINS, "multinic-shim": "multinic.shim", "multinic-meta": "multinic.meta.thin"}

#: The thin meta plugin needs libraries beyond the standard one (PyYAML, the
#: Kubernetes client), so it keeps ``site``; every other executable skips it.
_WITH_SITE = frozenset({"multinic-meta"})

_TEMPLATE = """#!{python} {flags}
# multinic CNI executable {plugin_type!r}, written by `multinic install-plugins`.
# One short request, then os._exit: collecting would cost every start about 1 ms.
import gc
gc.disable()
import sys
sys.path.append({package_root!r})
from {module} import main
main()
"""


def package_root() -> str:
    """The directory that holds the ``multinic`` package."""
    import multinic

    return os.path.dirname(os.path.dirname(os.path.abspath(multinic.__file__)))


def installed_from_source() -> bool:
    """True when multinic runs from a source tree (an editable install), not a package.

    A package's directory holds its ``multinic-<version>.dist-info``; a source
    tree's ``src/`` does not. Executables written then depend on that checkout.
    """
    root = package_root()
    try:
        names = os.listdir(root)
    except OSError:
        return True
    return not any(n.startswith("multinic-") and n.endswith(".dist-info") for n in names)


def executable_text(plugin_type: str, python: str | None = None) -> str:
    """The script that runs plugin ``plugin_type``."""
    return _TEMPLATE.format(
        python=python or sys.executable,
        flags="-I" if plugin_type in _WITH_SITE else "-IS",
        plugin_type=plugin_type,
        package_root=package_root(),
        module=EXECUTABLES[plugin_type],
    )


def compiled_shim() -> str | None:
    """The compiled shim `make install` built beside the package, if it did."""
    import multinic

    path = os.path.join(
        os.path.dirname(os.path.abspath(multinic.__file__)), "native", "multinic-shim"
    )
    return path if os.access(path, os.X_OK) else None


def _content(plugin_type: str, python: str | None, compiled: str | None) -> bytes:
    if plugin_type == "multinic-shim" and compiled is not None:
        with open(compiled, "rb") as binary:
            return binary.read()
    return executable_text(plugin_type, python).encode()


def install_plugins(
    bin_dir: str,
    python: str | None = None,
    *,
    use_compiled_shim: bool = True,
    only: Collection[str] = (),
) -> list[str]:
    """Write every plugin's executable (or those named in ``only``) into ``bin_dir``;
    returns their paths, sorted.

    A node daemon's image installs ``only=["multinic-shim"]`` onto its host: the
    host runs nothing else of ours, and a Python executable written in the image
    would name the image's interpreter, which the host does not have.
    ``multinic-shim`` is the compiled one when it was built (it starts in about
    a millisecond, the Python one in about 20), unless ``use_compiled_shim`` is
    false. Each file is written beside its final name and renamed over it, so a
    runtime executing the old one meanwhile never sees a half-written file
    (and never gets "text file busy").
    """
    unknown = sorted(set(only) - set(EXECUTABLES))
    if unknown:
        raise ValueError(f"no such executable {unknown}; known: {sorted(EXECUTABLES)}")
    os.makedirs(bin_dir, mode=0o755, exist_ok=True)
    compiled = compiled_shim() if use_compiled_shim else None
    written = []
    for plugin_type in sorted(only or EXECUTABLES):
        target = os.path.join(bin_dir, plugin_type)
        partial = f"{target}.tmp-{os.getpid()}"
        try:
            with open(partial, "wb") as out:
                out.write(_content(plugin_type, python, compiled))
            os.chmod(partial, 0o755)  # noqa: S103 -- an executable every runtime may run
            os.replace(partial, target)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise
        written.append(target)
    return written
