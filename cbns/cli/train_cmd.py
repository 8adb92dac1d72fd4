"""``cbns train``: train a two-tower model and write a run directory."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

from cbns.cli.options import add_config_flags, config_flags, flag_name
from cbns.config import build_config, load_yaml
from cbns.errors import CbnsError

DEFAULT_OUT = "runs/latest"


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Train a two-tower recommender. Flags override --config; "
                     "unset flags keep the file's value or the default shown.")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys as below, with _ for -)")
    p.add_argument("--out", metavar="DIR", help=f"run directory to write (default: {DEFAULT_OUT}); one that holds a "
                                                "finished run is refused without --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the finished run in --out; the new run trains beside it and replaces it only once "
                        "it has finished")
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
    """The run's configuration; an option the chosen sampler and towers do not read is refused
    when given as a flag and warned about when the config file set it."""
    from cbns.config.unread_options import unread_options

    file_options = load_yaml(args.config) if args.config is not None else {}
    if args.config is not None and not file_options:
        raise CbnsError(f"--config {args.config}: the file is empty (it sets no option; alone, every default "
                        f"would train on the full gowalla dataset): write the options in it, or drop --config")
    flags = {k: v for k, v in config_flags(args).items() if v is not None}
    config = build_config(file_options, flags)
    unread = unread_options(config, candidates=[*flags, *file_options])
    for name, (choice, readers) in unread.items():
        value = config[name]
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        detail = (f"{choice.text(flag_name)} does not read it "
                  f"(read only by {', '.join(r.text(flag_name) for r in readers)})")
        if name in flags:
            raise CbnsError(f"{flag_name(name)} {shown}: {detail}; drop the flag or choose one of those")
        where = file_options.where.get(name, args.config)
        print(f"cbns: warning: {where}: {name} {shown} has no effect: {detail}", file=sys.stderr)
    return config


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    """``--out ""`` would fall back to the default directory, ``--resume ""`` to the current one."""
    for flag, value in (("--out", args.out), ("--resume", args.resume), ("--config", args.config)):
        if value is not None and not value.strip():
            raise CbnsError(f"{flag} {value!r}: an empty path; give a directory" if flag != "--config"
                            else f"{flag} {value!r}: an empty path; give a YAML file")


def run(args: argparse.Namespace) -> int:
    from cbns.api import resume, train
    from cbns.cli.process_settings import apply as apply_process_settings
    from cbns.cli.tables import results_table
    from cbns.distributed.context import launched_rank
    from cbns.runs.run_dir import load_run_config
    from cbns.runs.staging import live_dir, settle

    _refuse_empty_paths(args)
    if args.resume is not None:
        _check_resume_args(args)
        out = Path(args.resume)
        settle(out)
        apply_process_settings(_given(args).get("threads", load_run_config(live_dir(out)).run.threads))
        with _resume_hint(out):
            result = resume(out, progress=not args.no_progress, **_given(args))
        config = load_run_config(out)
    else:
        config, out = config_from_args(args), Path(args.out or DEFAULT_OUT)
        if args.nproc != 1:
            from cbns.cli.launch import launch

            return launch(config, out, args.nproc, progress=not args.no_progress, overwrite=args.overwrite)
        apply_process_settings(config.run.threads)
        with _resume_hint(out):
            result = train(config, out, progress=not args.no_progress, overwrite=args.overwrite)
        if launched_rank() == 0:
            config = load_run_config(out)  # as the recipe resolved it (cbns.training.recipe)
    if launched_rank() == 0:
        print(results_table(result, config))
        print(f"run directory: {out}")
    return 0


@contextmanager
def _resume_hint(out: Path):
    """An interrupted run's one line says what is kept and how to continue it (so does a write that
    the disk refused, when a checkpoint is kept)."""
    try:
        yield
    except CbnsError as exc:
        from cbns.runs.checkpoint import LATEST, PREVIOUS, peek
        from cbns.runs.staging import live_dir

        if getattr(exc, "errno", None) is None:
            raise
        live = live_dir(out)
        for path in (live / LATEST, live / PREVIOUS):
            try:
                step = peek(path)["step"]
            except CbnsError:
                continue
            raise CbnsError(*exc.parts, f"; the checkpoint at step {step} is kept: continue with "
                            f"cbns train --resume {out} once there is room") from None
        raise
    except KeyboardInterrupt as exc:
        from cbns.runs.checkpoint import LATEST, peek
        from cbns.runs.staging import is_finished, live_dir

        live = live_dir(out)
        if not (live / "config.yaml").is_file() or is_finished(live):
            exc.detail = "before training started; nothing to resume: run the command again"
            raise
        if not getattr(exc, "detail", ""):
            try:
                exc.detail = f"the checkpoint at step {peek(live / LATEST)['step']} is kept"
            except CbnsError:
                exc.detail = "no checkpoint was written yet (a resume starts at step 0)"
        exc.hint = f"continue with: cbns train --resume {out}"
        raise


def _given(args: argparse.Namespace) -> dict:
    return {k: v for k, v in config_flags(args).items() if v is not None}


def _check_resume_args(args: argparse.Namespace) -> None:
    """--resume takes its configuration from the run directory: --config and a different --out are refused."""
    if args.config is not None:
        raise CbnsError(f"--config {args.config}: not allowed with --resume (the run's configuration is "
                        f"{Path(args.resume) / 'config.yaml'})")
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        raise CbnsError(f"--out {args.out}: a resumed run writes to its own directory {args.resume}; drop --out")
    if args.overwrite:
        raise CbnsError(f"--overwrite: not allowed with --resume (a resumed run continues in {args.resume})")
    if args.nproc != 1:
        raise CbnsError(f"--nproc {args.nproc}: --resume continues single-process runs only (distributed runs "
                        f"are not checkpointed)")
