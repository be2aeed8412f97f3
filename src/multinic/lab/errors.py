"""The lab's errors: one base, so ``lab up`` undoes whatever part failed the same way."""

from __future__ import annotations


class LabError(RuntimeError):
    """The lab could not be built, checked or removed; the message says what and where."""


class ProgramMissingError(LabError):
    """A program the lab runs is neither built nor on the PATH."""


class EtcdError(LabError):
    """The lab's etcd members did not start."""


class KubeLabError(LabError):
    """The API server refused or did not answer a request of the lab."""
