"""ebmlab: learn, sample, evaluate and apply unnormalized models p(x) = exp(-U(x)) / Z."""
from ._core.errors import ConfigError, DataError, EbmlabError, TrainingDivergedError

__version__ = "0.1.0"
