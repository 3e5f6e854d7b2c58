"""MCMC kernels under one contract: ``init(energy, x0) -> state``; ``step(energy, state, generator) -> (state, info)``."""
from .base import SAMPLERS, Info, Sampler, SamplerState, available, build
