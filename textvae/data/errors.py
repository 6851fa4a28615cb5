"""The error every data module raises: bad files, columns, labels, tokenizers or batches."""

from __future__ import annotations

from textvae.errors import TextVAEError


class DataError(TextVAEError, ValueError):
    """Data that cannot be used as given; the message names the file and the fix."""
