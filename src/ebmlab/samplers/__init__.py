"""MCMC kernels under one contract: ``init(energy, x0) -> state``; ``step(energy, state, generator) -> (state, info)``."""
from .base import SAMPLERS, Info, Sampler, SamplerState, available, build
from .accept import metropolis_hastings
from .adaptation import DualAveraging, DualAveragingState
from .buffer import ReplayBuffer
from .composite import Cycle
from .driver import SampleInfo, sample
from .hmc import HMC
from .kinetic_langevin import KineticLangevin
from .mala import MALA
from .rwm import RandomWalkMetropolis
from .ula import ULA
from .gibbs import CheckerboardGibbs, Gibbs
from .gibbs_with_gradients import GibbsWithGradients
from .cluster import SwendsenWang, Wolff
from .lattice_colouring import greedy_colouring, lattice_colouring
from .tie_no_tie import TieNoTie
from .advise import Advice, advise
