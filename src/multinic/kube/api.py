"""The Kubernetes API server as a :class:`~multinic.kube.objects.KubeSource`, through lightkube.

Why lightkube (measured in benchmarks/kube_client.py, reasons in docs/meta.md):
it imports in a third to a half of the time of the official client and
kubernetes_asyncio and holds about half their memory after a GET, and its
synchronous client suits a daemon that serves each request on a thread.

Every failure leaves this module as our error tree: an API server that does
not answer (refused, timed out, 5xx, 429) is code 11 so the runtime retries;
a request it refuses is code 5 with its reason; a missing pod is code 3.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Pod as PodResource
from lightkube.types import PatchType

from multinic.cni.errors import (
    InvalidConfigError,
    KubeRequestError,
    KubeUnavailableError,
    PodNotFoundError,
)
from multinic.kube.objects import (
    NAD_GROUP,
    NAD_KIND,
    NAD_PLURAL,
    NAD_VERSION,
    NETWORK_STATUS_ANNOTATION,
    Pod,
    encode_network_status,
    namespace_problem,
    object_name_problem,
)

NetworkAttachmentDefinition = create_namespaced_resource(
    NAD_GROUP, NAD_VERSION, NAD_KIND, NAD_PLURAL
)

#: Seconds for each request (connect, read, write): a CNI ADD waits on it, so short.
DEFAULT_TIMEOUT = 10.0
#: Statuses that say "not now" rather than "no": retrying later can succeed.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The field manager named in the pod's managedFields for the status annotation.
FIELD_MANAGER = "multinic"


def load_kubeconfig(path: Path | None = None) -> KubeConfig:
    """``path``, or else in-cluster service account, $KUBECONFIG, ~/.kube/config (in that order)."""
    try:
        return KubeConfig.from_file(path) if path is not None else KubeConfig.from_env()
    except ConfigError as exc:
        raise InvalidConfigError(
            "cannot load kubeconfig", f"{path or 'from the environment'}: {exc}"
        ) from exc
    except OSError as exc:
        raise InvalidConfigError(f"cannot read kubeconfig {path}", str(exc)) from exc


class ApiSource:
    """Pods and NADs from the API server; the network-status annotation written back to it."""

    def __init__(self, client: Client, server: str = "the Kubernetes API server") -> None:
        self._client = client
        self._server = server

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, timeout: float = DEFAULT_TIMEOUT) -> ApiSource:
        """A source for the cluster ``kubeconfig`` names (see :func:`load_kubeconfig`)."""
        config = load_kubeconfig(kubeconfig)
        try:
            single = config.get()
            client = Client(
                config=config, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER
            )
        except ConfigError as exc:
            raise InvalidConfigError("invalid kubeconfig", str(exc)) from exc
        except OSError as exc:  # a certificate or key file it names cannot be read
            raise InvalidConfigError("invalid kubeconfig", f"{type(exc).__name__}: {exc}") from exc
        server = single.cluster.server if single is not None else "the Kubernetes API server"
        return cls(client, server)

    def close(self) -> None:
        self._client.close()

    def get_pod(self, namespace: str, name: str) -> Pod:
        problem = namespace_problem(namespace) or object_name_problem(name)
        if problem:
            raise PodNotFoundError(f"no pod {namespace}/{name}", f"not a valid name: {problem}")
        with self._errors(f"get pod {namespace}/{name}"):
            try:
                obj = self._client.get(PodResource, name, namespace=namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    raise PodNotFoundError(
                        f"no pod {namespace}/{name}", f"{self._server}: {exc.status.message}"
                    ) from exc
                raise
        meta, spec = obj.metadata, obj.spec
        return Pod(
            namespace=namespace,
            name=name,
            uid=(meta.uid if meta is not None else None) or "",
            node_name=(spec.nodeName if spec is not None else None) or "",
            annotations=dict((meta.annotations if meta is not None else None) or {}),
        )

    def get_network_config(self, namespace: str, name: str) -> str | None:
        if namespace_problem(namespace) or object_name_problem(name):
            return None  # no object can have that name
        with self._errors(f"get NetworkAttachmentDefinition {namespace}/{name}"):
            try:
                obj = self._client.get(NetworkAttachmentDefinition, name, namespace=namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return None
                raise
        return config_of(obj)

    def set_network_status(
        self, namespace: str, name: str, status: Sequence[Mapping[str, Any]], uid: str = ""
    ) -> None:
        metadata: dict[str, Any] = {
            "annotations": {NETWORK_STATUS_ANNOTATION: encode_network_status(status)}
        }
        if uid:
            # The uid is immutable: a patch naming another one is refused (422) as a whole,
            # so a pod deleted and created again under the same name is never written.
            metadata["uid"] = uid
        with self._errors(f"set network-status of pod {namespace}/{name}"):
            try:
                self._client.patch(
                    PodResource,
                    name,
                    {"metadata": metadata},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
            except ApiError as exc:
                if exc.status.code == 404 or (uid and _refused_uid(exc)):
                    raise PodNotFoundError(
                        f"no pod {namespace}/{name}" + (f" with uid {uid}" if uid else ""),
                        f"{self._server}: {exc.status.message}",
                    ) from exc
                raise

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn the client library's failures into our error tree, naming ``what`` failed."""
        try:
            yield
        except ApiError as exc:
            code, message = exc.status.code, exc.status.message or str(exc)
            if code in RETRY_STATUSES:
                raise KubeUnavailableError(
                    f"Kubernetes API server busy or failing: cannot {what}",
                    f"{self._server} answered {code}: {message}",
                ) from exc
            raise KubeRequestError(
                f"Kubernetes API server refused to {what}",
                f"{self._server} answered {code}: {message}",
            ) from exc
        except httpx2.TransportError as exc:
            raise KubeUnavailableError(
                f"Kubernetes API server unreachable: cannot {what}",
                f"{self._server}: {type(exc).__name__}: {exc}",
            ) from exc
        except httpx2.HTTPError as exc:  # redirects, undecodable content
            raise KubeRequestError(
                f"Kubernetes API request failed: cannot {what}",
                f"{self._server}: {type(exc).__name__}: {exc}",
            ) from exc
        except ValueError as exc:
            # An error body that is not the API's JSON Status: a proxy or load
            # balancer in front of the API server answered (a 502 page), so later may work.
            raise KubeUnavailableError(
                f"Kubernetes API server did not answer as one: cannot {what}",
                f"{self._server}: {exc}",
            ) from exc


def config_of(obj: Mapping[str, Any]) -> str:
    """A NAD object's ``spec.config``; "" when it has none (the config dir then holds it)."""
    spec = obj.get("spec")
    config = spec.get("config") if isinstance(spec, Mapping) else None
    return config if isinstance(config, str) else ""


def _refused_uid(exc: ApiError) -> bool:
    """Whether the API server refused a write because the pod's uid is another."""
    details = exc.status.details
    causes = (details.causes if details is not None else None) or []
    return exc.status.code == 422 and any(cause.field == "metadata.uid" for cause in causes)
