"""Reading and writing YAML files of ``option: value`` lines, the line of each option kept for errors.

Files are read as YAML 1.1 (PyYAML's safe schema) with one change: a number in exponent form
without a decimal point (``1e-2``, ``5E3``) is a float, as in YAML 1.2 and as users write it;
plain YAML 1.1 reads it as text.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cbns.errors import CbnsError, FlagsOnly, Opt
from cbns.runs.atomic import atomic_write_text


class OptionLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-2`` as a float."""


OptionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml_text(text: str) -> Any:
    """``yaml.safe_load`` with :class:`OptionLoader` (YAMLError propagates)."""
    return yaml.load(text, Loader=OptionLoader)


class FileOptions(dict):
    """Options read from a file; ``where[name]`` is ``"path:line"`` of each, for error messages."""

    def __init__(self, values: dict[str, Any], where: dict[str, str]):
        super().__init__(values)
        self.where = where


def read_options(path: Path, what: str = "config") -> tuple[dict[str, Any], dict[str, int]]:
    """``({option: value}, {option: line})`` of a YAML mapping; values are plain YAML scalars/lists.

    ``what`` is the option that named the file (on the command line its flag heads the errors).
    A key given twice is an error (PyYAML would silently keep the last one). Keys are turned into
    strings (``1:`` becomes option ``"1"``), so an odd key ends as an unknown option, not a crash.
    """
    path = Path(path)
    if path.is_dir():
        raise CbnsError(FlagsOnly(Opt(what), " "), f"{path}: is a directory, not a YAML file")
    if not path.is_file():
        raise CbnsError(FlagsOnly(Opt(what), " "), f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise CbnsError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise CbnsError(FlagsOnly(Opt(what), " "), f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return _options(OptionLoader(text), path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CbnsError(f"{path}{at}: not valid YAML ({problem})") from None
    except RecursionError:
        raise CbnsError(f"{path}: not valid YAML (nested too deeply)") from None


def _options(loader: OptionLoader, path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The top-level mapping, key by key (YAML errors propagate to :func:`read_options`)."""
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
            return {}, {}
        if not isinstance(root, yaml.MappingNode):
            kind = type(loader.construct_object(root, deep=True)).__name__
            raise CbnsError(f"{path}: expected a mapping of option: value, got {kind}")
        values: dict[str, Any] = {}
        lines: dict[str, int] = {}
        loader.flatten_mapping(root)  # resolve "<<: *anchor" merge keys
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            key = str(loader.construct_object(key_node, deep=True))
            if key in values:
                raise CbnsError(f"{path}:{line}: option {key!r} given twice (first on line {lines[key]})")
            values[key] = loader.construct_object(value_node, deep=True)
            lines[key] = line
        return values, lines
    finally:
        loader.dispose()


def save_yaml(options: dict[str, Any], path: Path) -> None:
    """Write ``options`` (plain values) as YAML, atomically, in their order."""
    atomic_write_text(path, yaml.safe_dump(options, sort_keys=False))
