"""The primary pod network: node pod CIDRs, the node's pod bridge, routes between nodes, egress.

What Antrea or flannel do for a cluster (docs/podnet.md): every node gets a
pod CIDR (a /24 of the pod block), its pods sit on a gateway bridge with
``multinic-host-local`` on that CIDR, every other node's CIDR is routed
directly (host-gw) when the node shares an L2 segment, through a kernel
VXLAN otherwise, and traffic leaving the pod and service blocks is SNATed to
the node's address.
"""
