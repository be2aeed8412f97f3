"""The meta plugin: one primary and N secondary attachments per pod (what Multus does).

This part decides; it does not attach. :func:`multinic.meta.plan.plan_pod`
reads the pod and its NetworkAttachmentDefinitions through a
:class:`~multinic.kube.objects.KubeSource` and the CNI config dir, and returns an
ordered :class:`~multinic.meta.plan.Plan`: for each attachment the exact
delegate conflist, interface name, runtimeConfig and CNI_ARGS. Executing a plan
(ADD in order with rollback, DEL from a record) builds on it.
"""
