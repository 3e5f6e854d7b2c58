"""Generalized energy-based models (Arbel, Zhou & Gretton 2021, "Generalized Energy Based Models", ICLR):
generator networks as base measures, the GEBM facade trained with the KALE objective, and latent-space sampling
with the ebmlab samplers."""
from .networks import ConvGenerator, MLPGenerator
from .posterior import LATENT_SAMPLERS, LatentPosterior, sample_latent_posterior
from .gebm import GEBM

__all__ = ["ConvGenerator", "MLPGenerator", "LATENT_SAMPLERS", "LatentPosterior",
           "sample_latent_posterior", "GEBM"]
