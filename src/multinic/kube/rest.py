"""A small Kubernetes REST client on the standard library: custom objects with compare-and-swap.

The IPAM store (:mod:`multinic.ipam.kube_store`) runs inside every
``multinic-ipam`` executable, one process per pod ADD, started ``-IS`` (no
``site``: see multinic.plugins.install). Importing lightkube there costs about
0.26-0.44 s per call on the test machine (``python -X importtime -c "import
lightkube"``) and needs ``site``; ``ssl`` and :mod:`multinic.minihttp` (not
``http.client``, whose ``email`` imports alone cost ~20 ms) cost far less.
The store needs six verbs on one API group (get, list by label, create, merge
patch with a resourceVersion precondition, delete with one, get pod), so they
are written here, in multinic.kube, which stays the only package that talks to
the Kubernetes API. The node daemon and thin meta plugin keep lightkube
(:mod:`multinic.kube.api`) for pods and NADs.

Credentials come from a kubeconfig (client certificates, bearer tokens, basic
auth; paths or inline ``-data``) or, with no kubeconfig, from the pod's service
account (in-cluster). Failures leave as our error tree: unreachable, timed
out, 429 or 5xx is :class:`KubeUnavailableError` (code 11, try again); a refusal
(401, 403, an unknown resource type, an invalid object) is
:class:`KubeRequestError` (code 5) with the server's message.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from multinic.cni.errors import InvalidConfigError, KubeRequestError, KubeUnavailableError
from multinic.minihttp import Connection
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

DEFAULT_TIMEOUT = 5.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Access(NamedTuple):
    """How to reach one API server and who to be there."""

    host: str
    port: int
    tls: bool
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    basic: str | None = None

    @property
    def server(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise InvalidConfigError(f"cannot read kubeconfig {path}", str(exc)) from exc
    try:
        doc = json.loads(text)
    except ValueError:
        doc = _yaml(text, path)
    if not isinstance(doc, dict):
        raise InvalidConfigError(f"kubeconfig {path} is not a mapping")
    return doc


def _yaml(text: bytes, path: str) -> Any:
    """A YAML kubeconfig needs PyYAML; an executable started without ``site`` adds it first."""
    try:
        import yaml
    except ImportError:
        import site

        site.main()  # the interpreter's site-packages (a venv's too): only for YAML files
        try:
            import yaml
        except ImportError as exc:
            raise InvalidConfigError(
                f"kubeconfig {path} is YAML and PyYAML is not installed", "write it as JSON"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfigError(f"kubeconfig {path} is not valid YAML", str(exc)) from exc


def _named(doc: Mapping[str, Any], section: str, name: str, path: str) -> dict[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            inner = item.get(section[:-1])
            return inner if isinstance(inner, dict) else {}
    raise InvalidConfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")


def load_access(kubeconfig: str | None) -> Access:
    """The kubeconfig's current context; the pod's service account for None."""
    if kubeconfig is None:
        return in_cluster_access()
    doc = _read_config_file(kubeconfig)
    current = doc.get("current-context")
    if not isinstance(current, str) or not current:
        raise InvalidConfigError(f"kubeconfig {kubeconfig}: no current-context")
    context = _named(doc, "contexts", current, kubeconfig)
    cluster = _named(doc, "clusters", str(context.get("cluster")), kubeconfig)
    user = _named(doc, "users", str(context.get("user")), kubeconfig) if context.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise InvalidConfigError(
            f"kubeconfig {kubeconfig}: exec and auth-provider credentials are not supported",
            "use a client certificate or a token",
        )
    base = os.path.dirname(os.path.abspath(kubeconfig))

    def path_of(section: Mapping[str, Any], field: str) -> str | None:
        value = section.get(field)
        return None if not value else os.path.join(base, str(value))

    def data_of(section: Mapping[str, Any], field: str) -> bytes | None:
        value = section.get(field)
        try:
            return None if not value else base64.b64decode(str(value), validate=True)
        except ValueError as exc:
            raise InvalidConfigError(f"kubeconfig {kubeconfig}: {field} is not base64") from exc

    ca_data = data_of(cluster, "certificate-authority-data")
    host, port, tls = _server(str(cluster.get("server") or ""), kubeconfig)
    basic = None
    if user.get("username"):
        pair = f"{user['username']}:{user.get('password', '')}".encode()
        basic = base64.b64encode(pair).decode()
    return Access(
        host,
        port,
        tls,
        ca_file=path_of(cluster, "certificate-authority"),
        ca_data=None if ca_data is None else ca_data.decode(),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=path_of(user, "client-certificate"),
        key_file=path_of(user, "client-key"),
        cert_data=data_of(user, "client-certificate-data"),
        key_data=data_of(user, "client-key-data"),
        token=str(user["token"]) if user.get("token") else None,
        token_file=path_of(user, "tokenFile"),
        basic=basic,
    )


def in_cluster_access() -> Access:
    """The service account Kubernetes mounts into a pod (as client-go's InClusterConfig)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token = os.path.join(SERVICE_ACCOUNT_DIR, "token")
    if not host or not port or not os.path.exists(token):
        raise InvalidConfigError(
            "no kubeconfig given and not running in a pod",
            "set the store's kubeconfig (KUBERNETES_SERVICE_HOST/PORT or the token is missing)",
        )
    if not port.isdigit():
        raise InvalidConfigError(f"KUBERNETES_SERVICE_PORT {port!r} is not a port")
    return Access(
        host.strip("[]"),
        int(port),
        True,
        ca_file=os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt"),
        token_file=token,
    )


def _server(text: str, where: str) -> tuple[str, int, bool]:
    url = urlsplit(text)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise InvalidConfigError(f"kubeconfig {where}: server {text!r} is not an http(s) URL")
    if url.path not in ("", "/"):
        raise InvalidConfigError(f"kubeconfig {where}: server {text!r}: a path is not supported")
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidConfigError(f"kubeconfig {where}: server {text!r}: bad port") from exc
    return url.hostname, port, url.scheme == "https"


def _memory_file(data: bytes, name: str, opened: list[int]) -> str:
    """A path to ``data`` that never touches a disk (ssl loads certificates from paths only)."""
    fd = os.memfd_create(name)
    opened.append(fd)
    os.write(fd, data)
    return f"/proc/{os.getpid()}/fd/{fd}"


def tls_context(access: Access) -> ssl.SSLContext:
    """The TLS context for ``access``: its CA (or none, if told to skip) and client certificate."""
    opened: list[int] = []
    try:
        context = ssl.create_default_context(cafile=access.ca_file, cadata=access.ca_data)
        if access.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        cert = access.cert_file
        key = access.key_file
        if access.cert_data is not None:
            cert = _memory_file(access.cert_data, "client-cert", opened)
        if access.key_data is not None:
            key = _memory_file(access.key_data, "client-key", opened)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise InvalidConfigError(
            "cannot load the Kubernetes client credentials", f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for fd in opened:
            os.close(fd)
    return context


class RestClient:
    """JSON requests to one API server over one keep-alive connection."""

    def __init__(self, access: Access, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if timeout <= 0:
            raise InvalidConfigError(f"Kubernetes request timeout must be positive, not {timeout}")
        self.access = access
        self.timeout = timeout
        self._context = tls_context(access) if access.tls else None
        self._conn: Connection | None = None
        self._watching: Connection | None = None  # first_event's, meanwhile
        self.requests = 0  # round trips made (benchmarks count them)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "multinic-ipam"}
        if content_type:
            headers["Content-Type"] = content_type
        token = self.access.token
        if self.access.token_file:
            try:  # re-read each time: projected tokens rotate
                with open(self.access.token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
            except OSError as exc:
                raise InvalidConfigError("cannot read the service account token", str(exc)) from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.access.basic:
            headers["Authorization"] = f"Basic {self.access.basic}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        deadline: float,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """(status, decoded JSON body); transport failures, 429 and 5xx: KubeUnavailableError."""
        timeout = min(self.timeout, deadline - time.monotonic())
        what = f"{method} {path}"
        if timeout <= 0:
            raise KubeUnavailableError(
                f"Kubernetes API: no time left for {what}", self.access.server
            )
        payload = None if body is None else json.dumps(body).encode()
        if self._conn is None:
            self._conn = Connection(
                self.access.host, self.access.port, timeout=timeout, context=self._context
            )
        self.requests += 1
        try:
            headers = self._headers(content_type if payload else None)
            status, data = self._conn.request(method, path, payload, headers, timeout=timeout)
        except OSError as exc:
            # The connection closed itself: a broken or timed-out one is never reused.
            raise KubeUnavailableError(
                f"Kubernetes API server unreachable: {what}",
                f"{self.access.server}: {type(exc).__name__}: {exc}",
            ) from exc
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = {"message": data[:200].decode(errors="replace")}
        if status in RETRY_STATUSES:
            raise KubeUnavailableError(
                f"Kubernetes API server busy or failing: {what}",
                f"{self.access.server} answered {status}: {_message(answer)}",
            )
        return status, answer

    def first_event(self, path: str, *, timeout: float) -> dict[str, Any] | None:
        """The first event of the watch ``path`` (``?watch=1...``), on a connection of its own.

        None when nothing came within ``timeout`` seconds or the server ended the
        watch (its ``timeoutSeconds``); the connection is closed either way.
        """
        conn = Connection(
            self.access.host, self.access.port, timeout=timeout, context=self._context
        )
        self._watching = conn
        what = f"watch {path}"
        try:
            status, data = conn.first_line(path, self._headers(None), timeout=timeout)
            if status == 200:
                return dict(json.loads(data)) if data.strip() else None
        except TimeoutError:
            return None
        except (OSError, ValueError) as exc:
            raise KubeUnavailableError(
                f"Kubernetes API server unreachable: {what}",
                f"{self.access.server}: {type(exc).__name__}: {exc}",
            ) from exc
        finally:
            self._watching = None
        kind = KubeUnavailableError if status in RETRY_STATUSES else KubeRequestError
        raise kind(
            f"Kubernetes API server refused to {what}",
            f"{self.access.server} answered {status}: {data[:200].decode(errors='replace')}",
        )

    def interrupt(self) -> None:
        """End a :meth:`first_event` waiting in another thread now (it answers None or
        raises KubeUnavailableError); nothing when none waits."""
        conn = self._watching
        if conn is not None:
            conn.shutdown()


def _message(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("message") or answer.get("reason") or "")
    return ""


class CustomObjects:
    """Cluster-scoped custom objects of one API group/version, changed by compare-and-swap.

    ``create`` answers None when the name exists, ``patch`` and ``delete`` when the
    object's resourceVersion moved or it is gone: the caller lost a race.
    """

    def __init__(self, client: RestClient, group: str, version: str) -> None:
        self.client = client
        self.base = f"/apis/{group}/{version}"

    def _path(self, plural: str, name: str | None = None) -> str:
        path = f"{self.base}/{plural}"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def _refused(self, what: str, status: int, answer: Any) -> KubeRequestError:
        message = _message(answer)
        if status == 404:
            message += f" (are the CRDs installed? kubectl apply -f deploy/crds; {self.base})"
        return KubeRequestError(
            f"Kubernetes API server refused to {what}",
            f"{self.client.access.server} answered {status}: {message}",
        )

    def _call(
        self, method: str, path: str, body: Any, deadline: float, *, ok: tuple[int, ...], **kw: Any
    ) -> tuple[int, Any]:
        status, answer = self.client.request(method, path, body, deadline=deadline, **kw)
        if status in ok or 200 <= status < 300:
            return status, answer
        raise self._refused(f"{method} {path}", status, answer)

    def get(self, plural: str, name: str, *, deadline: float) -> dict[str, Any] | None:
        status, answer = self._call("GET", self._path(plural, name), None, deadline, ok=(404,))
        if status == 404:
            if _object_missing(answer):
                return None
            raise self._refused(f"GET {plural}", status, answer)
        return dict(answer)

    def list(
        self, plural: str, *, deadline: float, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        path = self._path(plural)
        if label_selector:
            path += f"?labelSelector={quote(label_selector, safe='')}"
        _, answer = self._call("GET", path, None, deadline, ok=())
        return list(answer.get("items") or [])

    def create(self, plural: str, obj: dict[str, Any], *, deadline: float) -> dict[str, Any] | None:
        status, answer = self._call("POST", self._path(plural), obj, deadline, ok=(409,))
        return None if status == 409 else dict(answer)

    def patch(
        self, plural: str, name: str, patch: dict[str, Any], *, deadline: float
    ) -> dict[str, Any] | None:
        """A JSON merge patch; a ``metadata.resourceVersion`` in it is a precondition."""
        status, answer = self._call(
            "PATCH",
            self._path(plural, name),
            patch,
            deadline,
            ok=(404, 409),
            content_type="application/merge-patch+json",
        )
        if status == 404 and not _object_missing(answer):
            raise self._refused(f"PATCH {plural}", status, answer)
        return None if status in (404, 409) else dict(answer)

    def delete(
        self, plural: str, name: str, *, deadline: float, resource_version: str | None = None
    ) -> bool:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version is not None:
            body["preconditions"] = {"resourceVersion": resource_version}
        status, answer = self._call(
            "DELETE", self._path(plural, name), body, deadline, ok=(404, 409)
        )
        if status == 404 and not _object_missing(answer):
            raise self._refused(f"DELETE {plural}", status, answer)
        return status not in (404, 409)

    def get_pod(self, namespace: str, name: str, *, deadline: float) -> dict[str, Any] | None:
        """The core/v1 pod, or None when there is none by that name."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        status, answer = self._call("GET", path, None, deadline, ok=(404,))
        if status == 404:
            if _object_missing(answer):
                return None
            raise self._refused("GET pods", status, answer)
        return dict(answer)


def _object_missing(answer: Any) -> bool:
    """A 404 about a named object (it is absent), not about the resource type or path."""
    if not isinstance(answer, dict) or answer.get("kind") != "Status":
        return False
    details = answer.get("details")
    return isinstance(details, dict) and bool(details.get("name"))
