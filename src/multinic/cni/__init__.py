"""The CNI specification: types, version conversion, plugin entry and runtime.

Standard library only: plugin executables import this on every pod start.
Import from the submodules (``multinic.cni.skel``, ``multinic.cni.runtime``, ...);
this package initialiser imports nothing so a plugin pays only for what it uses.
"""
