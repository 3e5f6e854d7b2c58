"""Losses for learning energies; each is registered by name (``objectives.build("cd")``)."""
from .base import OBJECTIVES, LossOutput, Objective, available, build
from .contrastive_divergence import ContrastiveDivergence, PersistentCD, ShortRunMLE
from .pseudo_likelihood import PseudoLikelihood
from .discrete_perturbations import BernoulliPerturbation, NeighbourhoodPerturbation, PoolingPerturbation
from .perturbations import PERTURBATIONS, GaussianPerturbation, Perturbation, build_perturbation
from .energy_discrepancy import EnergyDiscrepancy, energy_discrepancy_loss
from .nce import FittedGaussianNoise, NoiseContrastiveEstimation
from .mcmc_mle import MCMCMLE, importance_ess_fraction
from .score_matching import ExactScoreMatching
from .sliced_score_matching import SlicedScoreMatching
from .denoising_score_matching import DenoisingScoreMatching
from .deen import DEEN
from .diffusion_score_matching import DiffusionScoreMatching
