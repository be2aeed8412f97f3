"""The Kubernetes side: pods, NetworkAttachmentDefinitions and the network-status annotation.

Two sources behind one interface (:class:`multinic.kube.objects.KubeSource`):
:mod:`multinic.kube.api`, the API server through lightkube (the only module of
multinic that imports a Kubernetes client library), and
:mod:`multinic.kube.directory`, a directory of the same objects as YAML files
for single hosts and the lab. This package's ``__init__`` imports neither, so
choosing the directory never pays for the client library.
"""
