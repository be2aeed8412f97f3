"""The ``multinic`` command line."""
