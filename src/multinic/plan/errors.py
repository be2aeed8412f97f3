"""What the planner raises when its input cannot be read."""

from __future__ import annotations


class PlanError(Exception):
    """The planner cannot work with its input."""


class FabricError(PlanError):
    """The fabric file is not valid; the message starts with the field's path."""


class PreviousPlanError(PlanError):
    """The previous plan given with --previous cannot be read."""
