"""The errors textvae raises on purpose: four kinds under one base. The CLI prints their
message without a traceback; every message names the problem and the fix, so the kind says only
where to look."""


class TextVAEError(Exception):
    """An error whose message names the problem and the fix; shown to users as is."""


class ConfigError(TextVAEError, ValueError):
    """A recipe key, command-line flag or call argument that cannot be used as given: recipe
    values, precision, decoding and latent-API options, evaluation, probe and report options."""


class DataError(TextVAEError, ValueError):
    """Data that cannot be read as asked: a missing or malformed file, an encoding, a column, a
    split, a hub dataset."""


class ModelError(TextVAEError, ValueError):
    """A model that cannot be loaded or built: a missing or damaged model directory, pretrained
    weights that do not fit the run's tokenizer."""


class RunError(TextVAEError, RuntimeError):
    """A run that cannot be used or go on: its output directory, checkpoints, processes, or a
    training stopped by non-finite steps or a failed write; the message says what was kept."""
