"""A throwaway certificate authority for the lab's control plane (``multinic lab up --kube``)
and the test suite's clusters, made with the openssl CLI.

Every key is ECDSA P-256 (fast to make, accepted by Kubernetes for serving,
client and service-account keys); certificates live for two days, long enough
for any test run and useless after it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from multinic.lab.errors import LabError

DAYS = "2"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise LabError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _key_and_request(name: str, subject: str, cwd: Path) -> None:
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd,
    )  # fmt: skip


class Authority:
    """A CA in ``directory`` (``ca.crt``, ``ca.key``) that signs server and client certificates."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        _openssl(
            "req", "-x509", "-new", "-nodes", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", DAYS,
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=multinic-test-ca",
            cwd=directory,
        )  # fmt: skip

    @property
    def cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key(self) -> Path:
        return self.directory / "ca.key"

    def _sign(self, name: str, extensions: str) -> tuple[Path, Path]:
        ext = self.directory / f"{name}.ext"
        ext.write_text(extensions)
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", DAYS, "-extfile", ext.name, "-out", f"{name}.crt",
            cwd=self.directory,
        )  # fmt: skip
        return self.directory / f"{name}.crt", self.directory / f"{name}.key"

    def server(
        self, name: str, ips: list[str], dns: list[str], *, client_too: bool = False
    ) -> tuple[Path, Path]:
        """A serving certificate for these addresses and names: (cert, key).

        ``client_too``: also good as a client certificate (etcd's JSON gateway dials
        its own gRPC server with the serving certificate under --client-cert-auth).
        """
        _key_and_request(name, f"/CN={name}", self.directory)
        san = ",".join([*(f"IP:{ip}" for ip in ips), *(f"DNS:{d}" for d in dns)])
        usage = "serverAuth,clientAuth" if client_too else "serverAuth"
        return self._sign(
            name,
            f"subjectAltName={san}\nextendedKeyUsage={usage}\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n",
        )

    def client(self, name: str, user: str, groups: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A client certificate: Kubernetes reads the user from CN and groups from O."""
        subject = "".join(f"/O={group}" for group in groups) + f"/CN={user}"
        _key_and_request(name, subject, self.directory)
        return self._sign(name, "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")

    def key_pair(self, name: str) -> tuple[Path, Path]:
        """A bare key pair (service-account token signing): (public, private)."""
        private, public = self.directory / f"{name}.key", self.directory / f"{name}.pub"
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", private.name, cwd=self.directory,
        )  # fmt: skip
        _openssl("pkey", "-in", private.name, "-pubout", "-out", public.name, cwd=self.directory)
        return public, private
