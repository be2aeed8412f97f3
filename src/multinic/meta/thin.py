"""``multinic-meta``: the meta plugin as an executable, one process per call (thin mode).

For hosts that do not want a node daemon: the runtime executes this directly,
with the meta config (docs/meta.md) as the plugin's own fields, plus
``stateDir`` for the records. It runs the same code as the daemon, so the
same records serve DEL either way. Every call pays the interpreter's start
and the imports (the Kubernetes client's alone is about a quarter second with
``kubeconfig``; ``objectsDir`` avoids it), which is why the daemon exists.

DEL, CHECK and GC read only the records: they need no source, so they work
with the API server down or the kubeconfig gone.
"""

from __future__ import annotations

from pathlib import Path

from multinic.cni import skel
from multinic.cni.errors import InvalidConfigError
from multinic.cni.runtime import Runtime
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.meta.attach import Attacher
from multinic.meta.config import parse_meta_config
from multinic.meta.plugin import MetaPlugin
from multinic.meta.records import DEFAULT_STATE_DIR, RecordStore
from multinic.meta.selector import CACHE_SUBDIR, build_meta_plugin, open_source
from multinic.plugins.inprocess import InProcessExecutor


class ThinMetaPlugin:
    """Builds the meta plugin from each call's config, then runs the verb."""

    name = "multinic-meta"
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        return self._full(request).add(request)

    def status(self, request: skel.Request) -> None:
        self._full(request).status(request)

    def delete(self, request: skel.Request) -> None:
        self._attacher(request).delete(request.container_id)

    def check(self, request: skel.Request) -> None:
        self._attacher(request).check(request.container_id)

    def gc(self, request: skel.Request) -> None:
        valid = request.config.valid_attachments
        if valid is not None:
            self._attacher(request).collect_garbage(frozenset(a.container_id for a in valid))

    def _full(self, request: skel.Request) -> MetaPlugin:
        config = parse_meta_config(request.config.raw)
        paths = [Path(p) for p in request.path]
        return build_meta_plugin(
            config, open_source(config), _state_dir(request), paths, InProcessExecutor()
        )

    def _attacher(self, request: skel.Request) -> Attacher:
        state_dir = _state_dir(request)
        runtime = Runtime(
            [Path(p) for p in request.path],
            cache_dir=state_dir / CACHE_SUBDIR,
            executor=InProcessExecutor(),
        )
        return Attacher(runtime, RecordStore(state_dir))


def _state_dir(request: skel.Request) -> Path:
    value = request.config.raw.get("stateDir", str(DEFAULT_STATE_DIR))
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise InvalidConfigError(
            "invalid meta plugin config", f"stateDir: {value!r} is not absolute"
        )
    return Path(value)


PLUGIN = ThinMetaPlugin()


def main() -> None:
    skel.main(PLUGIN)
