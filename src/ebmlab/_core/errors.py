"""Errors a user can fix.

Every error raised because of bad user input derives from :class:`EbmlabError`
and carries a one-line message that names the bad value and what is allowed.
The CLI prints these messages without a traceback.
"""
from __future__ import annotations


class EbmlabError(Exception):
    """Base class for errors that a user can fix."""


class ConfigError(EbmlabError, ValueError):
    """A bad option: unknown name, out-of-range hyper-parameter, wrong type."""


class DataError(EbmlabError, ValueError):
    """Bad data: wrong shape, non-finite values, unreadable or missing file."""


class TrainingDivergedError(EbmlabError, RuntimeError):
    """Training produced a non-finite loss or energy; the last good checkpoint is kept."""


class SamplingWarning(UserWarning):
    """Markov chains that look wrong: stuck chains (acceptance near zero), divergences."""
