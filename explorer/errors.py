"""The one family of errors the tool raises on bad input, and its warning category.

The command line turns any ``PosembedError`` into a single line on stderr and a
non-zero exit code (``exit_code``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PosembedError(Exception):
    """Base of every error caused by input, environment or a plugin rather than a bug."""

    exit_code = 1


class SpecError(PosembedError):
    """A provider spec that names no provider, an unknown parameter or a bad value."""

    exit_code = 2


class SettingError(PosembedError):
    """An environment variable of posembed's with a value it cannot use (a flag that is not yes/no, a number
    out of its range)."""

    exit_code = 2


class PluginError(PosembedError):
    """A plugin that cannot be loaded or that registers something invalid."""


class DuplicateProviderError(PluginError):
    """Two plugins register a provider under the same name."""


class EmbeddingError(PosembedError):
    """A matrix that is not a usable position table (wrong shape, empty, NaN or Inf)."""


class SizeLimitError(PosembedError):
    """A table, image or file whose planned size exceeds the memory limit (``explorer.runtime.limits``), refused before
    anything is allocated."""


class ProviderError(PosembedError):
    """A provider could not produce its table (missing file, no table in a model, ...)."""


class OutputError(PosembedError):
    """An output path that cannot be written."""


class PosembedWarning(UserWarning):
    """Something worth telling the user that does not stop the work (a skipped plugin, NaN cosines)."""
