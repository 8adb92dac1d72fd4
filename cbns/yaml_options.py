"""Reading a YAML file of ``option: value`` lines, with the line of each option kept for errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cbns.errors import CbnsError


def read_options(path: Path, what: str = "--config") -> tuple[dict[str, Any], dict[str, int]]:
    """``({option: value}, {option: line})`` of a YAML mapping; values are plain YAML scalars/lists.

    A key given twice is an error (PyYAML would silently keep the last one). Keys are turned into
    strings (``1:`` becomes option ``"1"``), so an odd key ends as an unknown option, not a crash.
    """
    path = Path(path)
    if not path.is_file():
        raise CbnsError(f"{what} {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise CbnsError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise CbnsError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    try:
        return _options(yaml.SafeLoader(text), path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CbnsError(f"{path}{at}: not valid YAML ({problem})") from None
    except RecursionError:
        raise CbnsError(f"{path}: not valid YAML (nested too deeply)") from None


def _options(loader: yaml.SafeLoader, path: Path) -> tuple[dict[str, Any], dict[str, int]]:
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
