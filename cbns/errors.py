"""The one error type cbns raises for bad user input."""


class CbnsError(ValueError):
    """A user-facing error: one line that names the file, line or option and the received value.

    The CLI prints it as ``cbns: error: <message>`` and exits with status 2; library callers can
    catch it like any ValueError.
    """
