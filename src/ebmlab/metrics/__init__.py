"""Metrics: flat functions comparing samples (sinkhorn, mmd, energy distance, c2st) or scoring energies."""
from .sinkhorn import sinkhorn
from .mmd import mmd, median_heuristic
from .energy_distance import energy_distance
from .grid import GridLogDensity, grid_density, grid_log_density, grid_log_prob, grid_log_z, grid_nll
from .c2st import c2st
from .kale import kale
from .frechet import frechet_digits
from .mcmc_diagnostics import ess, ess_bulk, ess_tail, importance_ess, mcse_mean, rhat
from .exact import enumerate_states, exact_expectation, exact_log_prob, exact_log_z, exact_marginals, exact_moments, kaufman_log_z
from .ais import AISResult, ais_log_z
