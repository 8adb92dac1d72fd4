"""The error types cbns raises for bad user input and for a run that cannot go on."""


class CbnsError(ValueError):
    """A user-facing error: one line that names the file, line or option and the received value.

    The CLI prints it as ``cbns: error: <message>`` and exits with status 2; library callers can
    catch it like any ValueError.
    """


class OptionError(CbnsError):
    """An option's value is out of range; ``option`` and ``detail`` let a caller name its source
    (the flag, or the file and line it came from)."""

    def __init__(self, option: str, detail: str):
        super().__init__(f"{flag_name(option)}: {detail}")
        self.option, self.detail = option, detail


class NonFiniteError(CbnsError):
    """A NaN or infinity appeared in the loss, the embeddings or the weights."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM (a KeyboardInterrupt, so code that cleans up on Ctrl-C
    cleans up on either). ``detail`` says what was kept (``the checkpoint at step 120``)."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(signum)
        self.signum, self.detail = signum, detail

    @property
    def signal_name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


def flag_name(option: str) -> str:
    """The command-line flag of a config option: ``memory_size`` -> ``--memory-size``."""
    return "--" + option.replace("_", "-")
