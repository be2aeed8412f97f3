"""The node daemon: serves CNI calls from the shim, runs the meta plugin in-process.

A long-running process per node (a DaemonSet in a cluster): the shim the
runtime executes forwards each CNI call over a root-only unix socket, and the
daemon answers it with the meta plugin and our plugins already imported, so a
pod's network costs no interpreter start per plugin. It also serves
``/healthz`` and Prometheus ``/metrics``.
"""
