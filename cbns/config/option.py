"""One declaration per option: a config field carries its help, choices and bounds.

:class:`cbns.config.TrainConfig` declares every field with :func:`option`; the YAML reader
(:mod:`cbns.config.yaml_file`) type-checks through :func:`coerce`, :meth:`Option.check` range-checks,
and the ``cbns train`` flags are generated from the same declarations (:mod:`cbns.cli.options`).
Adding an option is one :func:`option` line in :class:`~cbns.config.TrainConfig`.

Values are checked in two steps, so that an error can name where the value came from:

* :func:`coerce`: the type (``int``, ``float``, ``bool``, ``str``, ``list[int]``, ``list[str]``);
  integers are accepted where a float is asked for; YAML booleans given to a word option are read
  as the word (``popularity_prior: off``) or refused with a hint to quote them.
* :meth:`Option.check`: finite floats, integers small enough for the tensors they size, bounds,
  choices (a tuple, or a :class:`cbns.registry.Registry` whose names are read when checking).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cbns.errors import CbnsError, FlagsOnly, Opt, OptionError
from cbns.registry import Registry

#: Largest integer option: tensor sizes and thread counts beyond it fail deep inside torch.
MAX_INT = 2**31 - 1

KINDS = ("int", "float", "bool", "str", "list[int]", "list[str]")


@dataclass(frozen=True)
class Option:
    """What a config field accepts, and how it is shown on the command line.

    Attributes:
        help: one sentence of help (the command line appends the default); another option is
            named in backquotes (```epochs```), which the command line shows as its flag.
        group: the config section that declares the option (``data``, ``sampler``, ``loss``,
            ``model``, ``training``, ``evaluation``, ``run``), also its help section; filled in by
            :class:`cbns.config.TrainConfig` from where the field is declared.
        key: the option's flat name (flags, YAML keys, messages) where it differs from the
            field's (``data`` for ``DataConfig.source``); None: the field's name.
        metavar: the placeholder shown in the help.
        choices: the allowed words, a tuple or a registry.
        minimum, above, maximum, below: bounds (inclusive: minimum, maximum; exclusive: above,
            below). For a list option they apply to every element.
        cap: the largest value a tensor or a seed can take (default :data:`MAX_INT` for
            integers, none for floats): a size beyond it fails deep inside torch.
        nonempty: a list or text option must not be empty; ``items`` names the elements of a list
            in messages (``cut-offs``).
        check: a last check ``value -> None`` raising ValueError with the detail (e.g. a word or a
            number).
        words: the words a text option accepts besides what ``check`` does; YAML's ``off`` (read
            as False) becomes the word ``off`` when it is one of them.
        note: what a bound's edge means, added to its message (``0 = off``).
    """

    help: str
    group: str = ""
    key: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | Registry | None = None
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    below: float | None = None
    cap: int | None = None
    nonempty: bool = False
    items: str = "values"
    check: Callable[[Any], None] | None = None
    words: tuple[str, ...] = ()
    note: str = ""

    def allowed(self) -> tuple[str, ...] | None:
        """The allowed words (a registry's names are read now), or None when any value goes."""
        if self.choices is None:
            return None
        return self.choices.choices() if isinstance(self.choices, Registry) else tuple(self.choices)

    def validate(self, name: str, kind: str, value: Any) -> None:
        """:class:`OptionError` for a value of the right type that is out of range."""
        if kind == "float" and not math.isfinite(value):
            raise OptionError(name, f"must be a finite number, got {value}")
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            raise OptionError(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        if self.nonempty and not value:
            raise OptionError(name, self._list_detail(value) if kind.startswith("list")
                              else "must not be empty, got an empty string")
        if kind in ("int", "float", "list[int]"):
            values = value if kind == "list[int]" else [value]
            for v in values:
                self._bounds(name, kind, v, value)
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as exc:
                raise OptionError(name, str(exc)) from None

    def _bounds(self, name: str, kind: str, v: float, shown: Any) -> None:
        cap = self.cap if self.cap is not None else (MAX_INT if kind != "float" else None)
        if cap is not None and v > cap:
            raise OptionError(name, f"must be <= {_num(cap)}, got {v}")
        lo, hi = self.minimum, self.maximum
        low_ok = (lo is None or v >= lo) and (self.above is None or v > self.above)
        high_ok = (hi is None or v <= hi) and (self.below is None or v < self.below)
        if low_ok and high_ok:
            return
        if kind == "list[int]":
            raise OptionError(name, self._list_detail(shown))
        if (lo is not None or self.above is not None) and (hi is not None or self.below is not None):
            left = f"[{_num(lo)}" if lo is not None else f"({_num(self.above)}"
            right = f"{_num(hi)}]" if hi is not None else f"{_num(self.below)})"
            raise OptionError(name, f"must be in {left}, {right}, got {v}")
        note = f" ({self.note})" if self.note else ""
        if not low_ok:
            bound = f">= {_num(lo)}" if lo is not None else f"> {_num(self.above)}"
        else:
            bound = f"<= {_num(hi)}" if hi is not None else f"< {_num(self.below)}"
        raise OptionError(name, f"must be {bound}{note}, got {v}")

    def _list_detail(self, shown: Any) -> str:
        bound = f" >= {_num(self.minimum)}" if self.minimum is not None else ""
        return f"must be a non-empty list of {self.items}{bound}, got {shown}"


def _num(x: float) -> str:
    """``3`` for 3.0, ``0.5`` for 0.5, ``2147483647`` for a large integer."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def option(default: Any, help: str, **meta) -> Any:
    """A dataclass field with default ``default`` (lists are copied) and its :class:`Option`."""
    spec = Option(help=help, **meta)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"option": spec})
    return dataclasses.field(default=default, metadata={"option": spec})


def spec_of(field: dataclasses.Field) -> Option:
    return field.metadata["option"]


def coerce(name: str, kind: str, value: Any, where: str | None, spec: Option) -> Any:
    """``value`` converted to ``kind``; :class:`CbnsError` naming ``where`` when it is not one
    (``where`` None: a value given to the option directly, named by its flag on the command line).

    A YAML boolean given to a text option: ``False`` is the word ``off`` where the option takes
    it; otherwise, and for ``True``, the error says to quote the word (YAML 1.1 reads ``off``,
    ``no``, ``on`` and ``yes`` as booleans).
    """
    if kind == "str" and isinstance(value, bool):
        if value is False and "off" in spec.words:
            return "off"
        raise CbnsError(*_source(name, where), f"option {name} must be str, got the YAML boolean {value} (off, no, "
                        f"on and yes are booleans in YAML); quote the word, e.g. {name}: 'off'")
    if kind == "str" and spec.words and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # popularity_prior: 0.3 in a YAML file
    if not _is(kind, value):
        raise CbnsError(*_source(name, where), f"option {name} must be {kind}, got {short_repr(value)}")
    if kind == "float":
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float
            raise CbnsError(*_source(name, where), f"option {name} must be a finite number, "
                            f"got {short_repr(value)}") from None
    return value


def _source(name: str, where: str | None) -> tuple:
    """The head of a type error: the file and line, or the flag (on the command line only)."""
    return (f"{where}: ",) if where is not None else (FlagsOnly(Opt(name), ": "),)


def _is(kind: str, value: Any) -> bool:
    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "int":
        return integer(value)
    if kind == "float":
        return integer(value) or isinstance(value, float)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "list[int]":
        return isinstance(value, list) and all(integer(x) for x in value)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    raise AssertionError(f"unknown option kind {kind}")


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
