"""``cbns --help`` and ``cbns train --help`` answer without importing torch: the commands, the
config's option metadata and the registries' names and summaries are all known without it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cbns.registry import ITEM_TOWERS, SAMPLERS, USER_TOWERS

REPO = Path(__file__).resolve().parents[2]


def help_and_imports(*argv: str) -> tuple[str, set[str]]:
    """The help text, and every module the command imported (from ``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cbns", *argv], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.stdout, modules


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["export", "--help"]])
def test_help_imports_no_torch(argv):
    text, modules = help_and_imports(*argv)
    assert "cbns.cli.commands" in modules  # the import log is read
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}
    assert "usage: cbns" in text


def test_train_help_lists_every_sampler_and_tower_with_its_summary():
    text, _ = help_and_imports("train", "--help")
    flat = " ".join(text.split())  # argparse wraps lines
    for flag, registry in (("--sampler", SAMPLERS), ("--user-tower", USER_TOWERS), ("--item-tower", ITEM_TOWERS)):
        assert flag in flat
        for name in registry.names():
            assert f"{name} = {' '.join(registry.summary(name).split())}" in flat
    assert {"inbatch", "uniform", "popularity", "mns", "cbns", "full"} <= set(SAMPLERS.names())
