#!/usr/bin/env bash
# The README's test command: install cbns (CPU torch first) into .venv, lint with ruff, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q torch==2.13.0        # the CPU wheel; a bare "torch" would pull a CUDA build
python -m pip install -q -e ".[test]"
ruff check .
python -m pytest -q "$@"
