"""The error types cbns raises for bad user input and for a run that cannot go on.

A message names the options it is about by their config names, through :class:`Opt` parts, so
that each front end shows them its own way: from Python ``str(error)`` reads ``option
memory_size: must be >= 0, got -5``; the command line renders each option as its flag
(``error.render(flag=cbns.cli.options.flag_name)``), the rest of the message unchanged.
"""
from __future__ import annotations

from collections.abc import Callable

#: How a front end names an option (``memory_size`` -> its flag), or None: as the config does.
Namer = Callable[[str], str] | None

_NO_VALUE = object()


class Opt:
    """An option named inside a message, with the value it was given (optional).

    From Python it reads ``memory_size`` (``memory_size=-5`` with a value, ``option memory_size``
    at the start of a message); rendered with a ``flag`` namer, the flag (``<flag> -5``).
    """

    def __init__(self, name: str, value: object = _NO_VALUE):
        self.name, self.value = name, value

    def text(self, flag: Namer = None, first: bool = False) -> str:
        if flag is not None:
            shown = flag(self.name)
            return shown if self.value is _NO_VALUE else f"{shown} {self.value}"
        shown = self.name if self.value is _NO_VALUE else f"{self.name}={self.value}"
        return f"option {shown}" if first else shown

    def __repr__(self) -> str:
        return f"Opt({self.name!r})" if self.value is _NO_VALUE else f"Opt({self.name!r}, {self.value!r})"


class FlagsOnly:
    """Parts of a message shown on the command line only (the flag before a message that names
    the option itself, ``option lr must be float``); from Python ``otherwise`` is shown instead
    (``FlagsOnly("flag", otherwise="option")``)."""

    def __init__(self, *parts: object, otherwise: str = ""):
        self.parts, self.otherwise = parts, otherwise

    def text(self, flag: Namer = None, first: bool = False) -> str:
        return render(self.parts, flag) if flag is not None else self.otherwise


def render(parts, flag: Namer = None) -> str:
    """Text and :class:`Opt` / :class:`FlagsOnly` parts joined, options as config names or, with
    ``flag``, as what it names them."""
    return "".join(p.text(flag, first=at == 0) if isinstance(p, (Opt, FlagsOnly)) else str(p)
                   for at, p in enumerate(parts))


class CbnsError(ValueError):
    """A user-facing error: one line that names the file, line or option and the received value.

    Built from text and :class:`Opt` parts (``CbnsError(Opt("data", path), ": no such file")``);
    ``option`` is the first option named (None when none is). The CLI prints
    ``cbns: error: <render(flag=flag_name)>`` and exits with status 2; library callers can catch it
    like any ValueError, and its ``str`` names options as the config does.
    """

    def __init__(self, *parts: object):
        self.parts = parts
        self.option = next((p.name for p in parts if isinstance(p, Opt)), None)  # FlagsOnly: see its text
        super().__init__(self.render())

    def render(self, flag: Namer = None) -> str:
        """The message with options as config names, or as ``flag`` names them (the CLI: flags)."""
        return render(self.parts, flag)


class OptionError(CbnsError):
    """An option's value is out of range; ``option`` and ``detail`` let a caller name its source
    (the option, or the file and line it came from)."""

    def __init__(self, option: str, detail: str):
        super().__init__(Opt(option), f": {detail}")
        self.detail = detail


class UnknownIdError(CbnsError):
    """A query named a user or item id the run does not have (an HTTP service answers it with 404)."""


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
