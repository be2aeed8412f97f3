"""The meta plugin: one primary and any number of secondary attachments per pod.

What Multus does, as one piece of code the node daemon (and the thin
``multinic-meta`` executable) calls: decide a pod's attachments from its
annotations and NetworkAttachmentDefinitions, attach them through their
delegate plugins, record what was attached so DEL never needs the API server,
and report the pod's network-status.
"""
