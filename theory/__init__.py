"""Symbolic theory (sympy only): dual activations, kernel recursions, dynamics, objectives."""

from theory.architecture import Architecture as Architecture
from theory.architecture import SpecError as SpecError
from theory.architecture import parse_spec as parse_spec
