"""Moved to :mod:`wbbgen.model`; this alias keeps ``wbbgen.objective`` imports working."""

from wbbgen.model import FunctionModel, Objective, build_objective, unconstrained_mode

__all__ = ["Objective", "FunctionModel", "build_objective", "unconstrained_mode"]
