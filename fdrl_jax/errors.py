"""Errors in what the user asked for, as opposed to bugs.

`python -m fdrl_jax.main` prints a `UserError`'s message alone and exits with a usage status
(2); any other exception keeps its traceback. Each class also derives from the built-in error
a caller would expect (ValueError, FileNotFoundError, ...), so `except ValueError` still works.
"""

from __future__ import annotations


class UserError(Exception):
    """The input is wrong and the message says what to change."""


class ConfigError(UserError, ValueError):
    """An invalid config field, name, pairing or config argument."""


class DataError(UserError, ValueError):
    """A malformed data file or folder (wrong shape, dtype, unreadable image, ...)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the config points at does not exist (data, weights, params, ...)."""


class NoCheckpointError(MissingFileError):
    """A mode that needs a trained model found no checkpoint in the workdir."""


class WorkdirError(UserError, PermissionError):
    """The work directory cannot be written."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency (TensorFlow Datasets, torch, ...) is needed and not installed."""


class ConfigMismatchError(UserError, ValueError):
    """The processes of one multi-process run were started with different settings."""


class DivergenceError(UserError, FloatingPointError):
    """Training or a flow diverged (a non-finite loss, gradient or sample, or an exploding
    estimator); the message names the settings to lower."""


class FlagError(UserError, ValueError):
    """A command-line flag that is unknown, missing, or has a value its type cannot take
    (including a `--config.FIELD` that the config does not have)."""
