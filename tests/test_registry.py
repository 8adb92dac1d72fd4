"""The registries' built-in declarations: known without importing, and true to the classes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cbns.registry import BUILTINS, ITEM_TOWERS, SAMPLERS, USER_TOWERS, Registry


def test_names_summaries_and_options_need_no_import():
    code = ("import sys; from cbns.registry import SAMPLERS, USER_TOWERS; "
            "SAMPLERS.names(), SAMPLERS.summary('cbns'), SAMPLERS.options('auto'), USER_TOWERS.options('pooled'); "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'cbns.negatives', 'cbns.model'))))")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo,
                         env={**os.environ, "PYTHONPATH": str(repo)}).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("registry", [SAMPLERS, USER_TOWERS, ITEM_TOWERS], ids=lambda r: r.kind)
def test_declarations_agree_with_the_classes(registry):
    for name, target, summary, options in BUILTINS[registry]:
        cls = registry.get(name)
        assert f"{cls.__module__}:{cls.__qualname__}" == target
        assert (cls.summary, tuple(cls.options)) == (summary, tuple(options)) == (registry.summary(name),
                                                                                 registry.options(name))
    assert registry.names()[:len(BUILTINS[registry])] == tuple(row[0] for row in BUILTINS[registry])


def test_declared_entries_import_on_get_and_plugins_register_beside_them():
    registry = Registry("thing", "json")
    registry.declare("decoder", "json.decoder:JSONDecoder", summary="reads JSON", options=("strict",))
    assert registry.names() == ("decoder",) and registry.summary("decoder") == "reads JSON"

    @registry.register("mine")
    class Mine:
        summary, options = "a plugin", ("x",)

    import json.decoder
    assert registry.get("decoder") is json.decoder.JSONDecoder and registry.get("mine") is Mine
    assert registry.names() == ("decoder", "mine") and registry.options("mine") == ("x",)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("decoder")(Mine)
    with pytest.raises(KeyError, match="unknown thing 'nope'; known: decoder, mine"):
        registry.get("nope")
