"""The meta plugin: one primary and any number of secondary attachments per pod.

What Multus does, as one piece of code the node daemon (and the thin
``multinic-meta`` executable) calls:

- :mod:`~multinic.meta.plan` decides: :func:`~multinic.meta.plan.plan_pod`
  reads the pod and its NetworkAttachmentDefinitions through a
  :class:`~multinic.kube.objects.KubeSource` and the CNI config dir, and
  returns the ordered attachments, each with its exact delegate conflist,
  interface name, runtimeConfig and CNI_ARGS;
- :mod:`~multinic.meta.attach` attaches them through their delegate plugins
  (the primary first, the secondaries at once, all or none) and
  :mod:`~multinic.meta.records` keeps what was attached, so DEL never needs
  the API server;
- :mod:`~multinic.meta.plugin` is the CNI plugin object the daemon serves.
"""
