"""multinic's CNI plugins: one module per plugin, each a ``PLUGIN`` object and a ``main``.

Kept empty on purpose: a plugin executable imports this package on every pod
start, and anything imported here is paid for on that path.
"""
