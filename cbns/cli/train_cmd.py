"""``cbns train``: train a two-tower model and write a run directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cbns.cli.options import add_config_flags, config_flags
from cbns.config import build_config, load_yaml
from cbns.distributed.context import launched_rank
from cbns.errors import CbnsError

DEFAULT_OUT = "runs/latest"


def register(commands) -> None:
    p = commands.add_parser("train", help="train a model and write a run directory",
                            description="Train a two-tower recommender. Flags override --config; "
                                        "unset flags keep the file's value or the default shown.")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys as below, with _ for -)")
    p.add_argument("--out", metavar="DIR", help=f"run directory to write (default: {DEFAULT_OUT})")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the interrupted run in DIR from its latest checkpoint, with its saved "
                        "configuration (only --threads and --checkpoint-every may be given)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, metavar="N", default=1,
                   help="train on N local processes (DDP; gloo on CPU, NCCL on GPU); --batch-size stays "
                        "the global batch, --threads is per process (default: %(default)s; see also torchrun)")
    add_config_flags(p)
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace):
    file_options = load_yaml(args.config) if args.config else {}
    return build_config(file_options, config_flags(args))


def run(args: argparse.Namespace) -> int:
    from cbns.api import resume, train
    from cbns.cli.tables import results_table
    from cbns.runs.run_dir import load_run_config

    if args.resume is not None:
        _check_resume_args(args)
        out = Path(args.resume)
        result = resume(out, progress=not args.no_progress, **_given(args))
        config = load_run_config(out)
    else:
        config, out = config_from_args(args), Path(args.out or DEFAULT_OUT)
        if args.nproc != 1:
            from cbns.distributed.launch import launch

            return launch(config, out, args.nproc, progress=not args.no_progress)
        try:
            result = train(config, out, progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"cbns: interrupted; continue with: cbns train --resume {out}", file=sys.stderr)
            raise
    if launched_rank() == 0:
        print(results_table(result, config))
        print(f"run directory: {out}")
    return 0


def _given(args: argparse.Namespace) -> dict:
    return {k: v for k, v in config_flags(args).items() if v is not None}


def _check_resume_args(args: argparse.Namespace) -> None:
    """--resume takes its configuration from the run directory: --config and a different --out are refused."""
    if args.config is not None:
        raise CbnsError(f"--config {args.config}: not allowed with --resume (the run's configuration is "
                        f"{Path(args.resume) / 'config.yaml'})")
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        raise CbnsError(f"--out {args.out}: a resumed run writes to its own directory {args.resume}; drop --out")
    if args.nproc != 1:
        raise CbnsError(f"--nproc {args.nproc}: --resume continues single-process runs only (distributed runs "
                        f"are not checkpointed)")
