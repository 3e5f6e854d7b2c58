"""Energies U(x): the base contract, neural nets, analytic targets, discrete models."""
from .base import Energy, FunctionEnergy
from .mlp import MLPEnergy, activation_names
