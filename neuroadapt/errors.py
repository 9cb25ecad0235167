"""Exceptions raised by neuroadapt.

Every error a user can cause (a bad recipe, a wrong tensor shape, NaN input, an option
neuroadapt does not support) is one of these. Each message says what was wrong, where,
and what to do. The CLI prints ``error: <message>`` on one line and exits non-zero.
"""


class NeuroadaptError(Exception):
    """Base class of every neuroadapt error."""

    exit_code = 2


class ConfigError(NeuroadaptError, ValueError):
    """A recipe / configuration file is missing, malformed or has invalid values."""


class UnsupportedOptionError(NeuroadaptError, ValueError):
    """An option (neuron type, reset mechanism, layer, ...) that neuroadapt does not support."""


class ShapeError(NeuroadaptError, ValueError):
    """A tensor has the wrong number of dimensions or the wrong size."""


class InvalidInputError(NeuroadaptError, ValueError):
    """Input values are invalid (NaN / inf, negative where not allowed, out of range)."""


class DataError(NeuroadaptError, ValueError):
    """A data file or data set is missing, malformed or of the wrong format."""


class CheckpointError(NeuroadaptError, RuntimeError):
    """A checkpoint or run directory is missing, incomplete or inconsistent."""


class ReferenceUnavailableError(NeuroadaptError, RuntimeError):
    """An independent reference simulator (Brian2, Lava, NEST) cannot run here."""
