"""``cbns train``: train a two-tower model and write a run directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cbns.cli.tower_flags import add_tower_flags
from cbns.config import TrainConfig, build_config, load_yaml
from cbns.distributed.context import launched_rank
from cbns.errors import CbnsError
from cbns.negatives import BANK_MODES, SAMPLERS
from cbns.loss import ITEM_SIDES
from cbns.lr_schedule import LR_SCHEDULES

DEFAULTS = TrainConfig()
DEFAULT_OUT = "runs/latest"


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _ks(text: str) -> list[int]:
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 20,50, got {text!r}") from None


def register(commands) -> None:
    p = commands.add_parser("train", help="train a model and write a run directory",
                            description="Train a two-tower recommender. Flags override --config; "
                                        "unset flags keep the file's value or the default shown.")
    d = DEFAULTS
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys as below, with _ for -)")
    p.add_argument("--out", metavar="DIR", help=f"run directory to write (default: {DEFAULT_OUT})")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the interrupted run in DIR from its latest checkpoint, with its saved "
                        "configuration (only --threads and --checkpoint-every may be given)")
    p.add_argument("--data", help=f"bundled name (gowalla), LightGCN directory, MovieLens-100k directory, "
                                  f".txt sequence file, or CSV/TSV/Parquet table (default: {d.data})")
    p.add_argument("--sampler", choices=SAMPLERS, help=f"negative sampler (default: {d.sampler})")
    p.add_argument("--batch-size", type=int, metavar="B", help=f"training batch size (default: {d.batch_size})")
    p.add_argument("--memory-size", type=int, metavar="M", help=f"cbns: bank size in items (default: {d.memory_size})")
    p.add_argument("--warmup-steps", type=int, metavar="W",
                   help=f"cbns: steps with in-batch negatives only before the bank is used (default: {d.warmup_steps})")
    p.add_argument("--bank-mode", choices=BANK_MODES,
                   help=f"cbns: stale = stored vectors (paper), refresh = re-encode stored ids (default: {d.bank_mode})")
    p.add_argument("--item-side", choices=ITEM_SIDES,
                   help=f"joint = one softmax for both towers (paper); split = item tower learns from the "
                        f"gradient-carrying candidates only (default: {d.item_side})")
    p.add_argument("--num-negatives", type=int, metavar="N",
                   help=f"uniform/popularity/mns: sampled negatives per step (default: {d.num_negatives})")
    p.add_argument("--popularity-alpha", type=float, metavar="A",
                   help=f"popularity: q proportional to count^A (default: {d.popularity_alpha})")
    p.add_argument("--dim", type=int, metavar="D", help=f"embedding width (default: {d.dim})")
    p.add_argument("--normalize", type=_bool, metavar="BOOL",
                   help=f"L2-normalise both towers, i.e. cosine scores (default: {d.normalize})")
    p.add_argument("--temperature", type=float, metavar="T", help=f"softmax temperature (default: {d.temperature})")
    p.add_argument("--logq-correction", type=_bool, metavar="BOOL",
                   help=f"subtract log q from every logit (default: {d.logq_correction})")
    p.add_argument("--popularity-prior", metavar="auto|off|BETA",
                   help="rank by score / T + BETA * log(1 + train count): a popularity prior the cosine "
                        "score cannot hold; auto = BETA chosen on validation after training from "
                        f"0..1 (default: {d.popularity_prior})")
    p.add_argument("--item-bias", type=_bool, metavar="BOOL",
                   help="learn one score offset per item, trained with the towers and added to the "
                        f"ranking score (default: {d.item_bias})")
    p.add_argument("--init-std", type=float, metavar="S", help=f"std of the embedding init (default: {d.init_std})")
    p.add_argument("--epochs", type=int, metavar="E", help=f"maximum epochs (default: {d.epochs})")
    p.add_argument("--lr", type=float, metavar="LR", help=f"Adam learning rate (default: {d.lr})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="constant, or decay per step to 0 at the last of --epochs: cosine or linear "
                        f"(default: {d.lr_schedule})")
    p.add_argument("--weight-decay", type=float, metavar="WD", help=f"Adam weight decay (default: {d.weight_decay})")
    p.add_argument("--seed", type=int, metavar="S", help=f"seed of init, splits, shuffling, sampling (default: {d.seed})")
    p.add_argument("--valid-fraction", type=float, metavar="F",
                   help=f"share of each user's train items held out for validation (default: {d.valid_fraction})")
    p.add_argument("--eval-every", type=int, metavar="E", help=f"validate every E epochs (default: {d.eval_every})")
    p.add_argument("--patience", type=int, metavar="P",
                   help=f"stop after P validations without improvement (default: {d.patience})")
    p.add_argument("--ks", type=_ks, metavar="K,K", help=f"metric cut-offs (default: {','.join(map(str, d.ks))})")
    p.add_argument("--drift-every", type=int, metavar="N",
                   help=f"record item-embedding drift every N steps into drift.json, 0 = off (default: {d.drift_every})")
    p.add_argument("--drift-sample", type=int, metavar="S",
                   help=f"drift: number of fixed random items measured (default: {d.drift_sample})")
    p.add_argument("--drift-deltas", type=_ks, metavar="DT,DT",
                   help=f"drift: step distances dt (default: {','.join(map(str, d.drift_deltas))})")
    p.add_argument("--threads", type=int, metavar="N", help=f"torch threads, 0 = all cores (default: {d.threads})")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help=f"also checkpoint every N steps, not only after each epoch; 0 = epoch ends only "
                        f"(default: {d.checkpoint_every})")
    add_tower_flags(p, d)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, metavar="N", default=1,
                   help="train on N local processes (DDP; gloo on CPU, NCCL on GPU); --batch-size stays "
                        "the global batch, --threads is per process (default: %(default)s; see also torchrun)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    flags = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    file_options = load_yaml(args.config) if args.config else {}
    return build_config(file_options, flags)


def run(args: argparse.Namespace) -> int:
    from cbns.api import resume, train
    from cbns.report import results_table
    from cbns.run_dir import load_run_config

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
    return {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}


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
