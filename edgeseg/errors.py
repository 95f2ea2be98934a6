"""User-facing errors.

Anything a user can cause (a bad path, a corrupt file, mismatched models, a dead camera) raises an
`EdgesegError` subclass whose message says what is wrong and what to do. The CLI prints that one line
and exits non-zero; library callers can catch the specific subclass.
"""

from __future__ import annotations


class EdgesegError(Exception):
    """Base class: the message is one line, shown to the user as-is."""

    exit_code: int = 2


class InputPathError(EdgesegError):
    """A path the user gave does not exist or is not what was expected."""


class OutputPathError(EdgesegError):
    """An output path cannot be written: no permission, a file where a folder is expected, the input itself."""


class CheckpointError(EdgesegError):
    """A checkpoint cannot be read, is corrupt, or is not an edgeseg/known checkpoint."""


class ConversionError(CheckpointError):
    """Foreign weights cannot be mapped strictly onto an edgeseg model."""


class ModelMismatchError(EdgesegError):
    """Two models (or a model and a config) do not fit together."""


class ConfigError(EdgesegError):
    """An unknown config key, a bad value, or an unknown preset/model name."""


class DatasetError(EdgesegError):
    """A dataset tree is missing parts, has unreadable files or out-of-range labels."""


class ExportError(EdgesegError):
    """ONNX export, quantisation or an engine build failed, or parity was not reached."""


class RuntimeBackendError(EdgesegError):
    """A runtime backend is unavailable or cannot load/run the given model."""


class SourceError(EdgesegError):
    """A video/camera source cannot be opened or died."""
