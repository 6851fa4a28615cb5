"""The base of every error textvae raises on purpose: the CLI prints these without a traceback."""


class TextVAEError(Exception):
    """An error whose message names the problem and the fix; shown to users as is."""
