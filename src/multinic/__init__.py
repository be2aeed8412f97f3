"""multinic: Kubernetes pod networking for telco clouds.

Kept empty on purpose: plugin executables import ``multinic.cni`` on every pod
start, and anything imported here is paid for on that path.
"""

__version__ = "0.1.0"
