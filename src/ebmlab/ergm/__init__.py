"""Exponential random graph models: statnet-style formulas, simulation, and four estimators.

>>> import networkx as nx
>>> from ebmlab.ergm import ERGM
>>> fit = ERGM("edges + triangle").fit(nx.florentine_families_graph(), method="mcmc_mle", seed=1)
>>> print(fit.summary())   # doctest: +SKIP
"""
from .cli import cli_fit
from .formula import TermSpec, parse_formula
from .gof import GOFResult, goodness_of_fit
from .io import read_graph
from .model import ERGM, BoundERGM, Simulation
from .result import ERGMResult
from .terms import TERMS

__all__ = ["ERGM", "BoundERGM", "ERGMResult", "GOFResult", "Simulation", "TERMS", "TermSpec", "cli_fit",
           "goodness_of_fit", "parse_formula", "read_graph"]
