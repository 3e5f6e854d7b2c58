"""Losses for learning energies; each is registered by name (``objectives.build("cd")``)."""
from .base import OBJECTIVES, LossOutput, Objective, available, build
