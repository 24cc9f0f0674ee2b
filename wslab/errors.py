"""The error types a user can provoke.

Every mistake a user can make (a malformed trace line, a bad header, a config value out of
range) raises a subclass of :class:`WslabError` with a one-line message that says what is
wrong and where. The command line prints that line and exits with code 2; it never shows a
traceback for these. Programming errors are not ``WslabError``: they should crash loudly.
"""

from __future__ import annotations


class WslabError(Exception):
    """A mistake in the user's input: printed as one line, exit code 2."""


class TraceFormatError(WslabError):
    """A trace file (or a HAR file being imported) that does not follow the format."""


class NegotiationError(WslabError):
    """A ``Sec-WebSocket-Extensions`` header that is malformed or cannot be accepted."""


class ParamError(NegotiationError):
    """An extension offer or answer that cannot be taken because of one parameter.

    Attributes:
        parameter: The parameter at fault (``server_max_window_bits``, ``dict``, ...), or
            the unknown name that was given.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class OfferDeclined(ParamError):
    """A server cannot accept this offer: it tries the client's next one (RFC 7692
    section 5.1), or answers without the extension."""


class ResponseRejected(ParamError):
    """A client must fail the connection: the answer breaks what the offer allowed."""


class ConfigError(WslabError):
    """A configuration value that is missing, unknown or out of range."""


class PayloadTooBig(WslabError):
    """A message that would decompress past the configured ``max_size`` (close code 1009)."""


class DecodeError(WslabError):
    """Bytes that do not decode: corrupt compressed data or a malformed batch envelope."""
