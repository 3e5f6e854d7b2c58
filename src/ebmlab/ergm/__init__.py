"""Exponential random graph models: statnet-style formulas, simulation, and four estimators.

>>> import networkx as nx
>>> from ebmlab.ergm import ERGM
>>> fit = ERGM("edges + triangle").fit(nx.florentine_families_graph(), method="mcmc_mle", seed=1)
>>> print(fit.summary())   # doctest: +SKIP

Change statistics, the MH chains and the MPLE's design matrix run in compiled numba kernels
(:mod:`ebmlab.ergm.kernels`) on sparse neighbour lists (:mod:`ebmlab.ergm.sparse`) by default
(``ERGM(formula, backend="auto")``; ``backend="numpy"`` is the reference they are tested against), so graphs of
10^5 nodes fit by (case-control) MPLE and MCMC-MLE.

``ERGM(formula).energy(n_nodes, theta)`` is the same model as an exponential-family
:class:`~ebmlab.energies.ERGMEnergy` on dyad vectors, for ebmlab's generic samplers, objectives and exact
enumeration.
"""
from ..energies.ergm import ERGMEnergy
from .cli import cli_fit
from .formula import TermSpec, parse_formula
from .gof import GOFResult, goodness_of_fit
from .io import read_graph
from .model import ERGM, BoundERGM, Simulation
from .result import ERGMResult
from .terms import TERMS

__all__ = ["ERGM", "BoundERGM", "ERGMEnergy", "ERGMResult", "GOFResult", "Simulation", "TERMS", "TermSpec", "cli_fit",
           "goodness_of_fit", "parse_formula", "read_graph"]
