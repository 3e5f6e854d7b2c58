"""ERGM estimators: ``ESTIMATORS.get(name)(bound, rng=..., **options) -> ERGMResult``.

- ``"mple"``: maximum pseudo-likelihood (:mod:`.mple`)
- ``"mcmc_mle"``: Monte Carlo MLE with Hummel et al.'s step length (:mod:`.mcmc_mle`)
- ``"cd"``: contrastive divergence (:mod:`.cd`)
- ``"ed"``: energy discrepancy with dyad flips (:mod:`.ed`)

:func:`fit_exponential_family` (:mod:`.exponential_family`) runs the same Geyer–Thompson driver
(:func:`.geyer_thompson.geyer_thompson_mle`) on any discrete exponential-family energy, e.g. an Ising model.
"""
from ..._core.registry import Registry
from .cd import fit_cd
from .ed import fit_ed
from .exponential_family import fit_exponential_family
from .mcmc_mle import fit_mcmc_mle
from .mple import fit_mple

ESTIMATORS = Registry("ERGM fitting method")
ESTIMATORS.register("mple")(fit_mple)
ESTIMATORS.register("mcmc_mle")(fit_mcmc_mle)
ESTIMATORS.register("cd")(fit_cd)
ESTIMATORS.register("ed")(fit_ed)

__all__ = ["ESTIMATORS", "fit_mple", "fit_mcmc_mle", "fit_cd", "fit_ed", "fit_exponential_family"]
