"""``cbns train --nproc N``: start N training processes through ``torch.distributed.run``.

The parent validates the configuration, the output directory and the dataset, writes the resolved
configuration to a temporary YAML file and runs
``python -m torch.distributed.run --standalone --nproc-per-node N -m cbns train --config FILE ...``
(a free local port, one machine), which is what ``torchrun`` does; every child then trains as a
rank of :class:`cbns.training.trainer.Trainer`, its torch threads set from ``--threads`` or, when
not given, this machine's cores divided among the ranks (:mod:`cbns.cli.process_settings`). The
children import the same ``cbns`` as the parent.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cbns.config import TrainConfig, save_yaml
from cbns.data.loading import load_data
from cbns.errors import CbnsError
from cbns.runs.resume import refuse_unfinished
from cbns.runs.run_dir import prepare_out_dir
from cbns.runs.staging import refuse_occupied, settle


def launch_command(config_path: Path, out: Path, nproc: int, progress: bool, overwrite: bool = False) -> list[str]:
    """The argv of the launcher process."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "cbns", "train", "--config", str(config_path), "--out", str(out),
            *([] if progress else ["--no-progress"]), *(["--overwrite"] if overwrite else [])]


def launch(config: TrainConfig, out: Path, nproc: int, progress: bool = True, overwrite: bool = False) -> int:
    """Train ``config`` on ``nproc`` local processes writing ``out``; the launcher's exit status."""
    if nproc < 1:
        raise CbnsError(f"--nproc: must be >= 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise CbnsError(f"--nproc {nproc}: this process already runs under a launcher "
                        f"(WORLD_SIZE={os.environ['WORLD_SIZE']}); use either torchrun or --nproc")
    settle(out)
    if refuse_occupied(out, overwrite) == out and out.exists():  # finished: refused without --overwrite
        refuse_unfinished(out)  # an interrupted single-process run there is continued with --resume
    load_data(config)  # once here, so that a bad --data ends in one error line before any rank starts
    if not out.exists():
        prepare_out_dir(out)
        out.rmdir()  # writable; the rank that writes it creates it (and removes it if it fails to start)
    package_root = str(Path(__file__).resolve().parents[2])  # the directory holding cbns/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="cbns-launch-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        save_yaml(config, config_path)
        return subprocess.run(launch_command(config_path, out, nproc, progress, overwrite), env=env).returncode
