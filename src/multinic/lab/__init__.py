"""The lab: nodes and pods as network namespaces on one machine, for the demo and tests."""
