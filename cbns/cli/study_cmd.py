"""``cbns study``: run a grid of trainings from a spec and write a report."""
from __future__ import annotations

import argparse
import shlex

#: What each bundled spec costs, measured on the 2-core development machine (docs/study.md has the
#: commands); tests/study/test_study.py checks the cell counts against the specs.
SPEC_COSTS = {"quick": (16, "93 s alone"),
              "default": (24, "61 minutes of training alone, 1 thread per cell")}


def register(p: argparse.ArgumentParser) -> None:
    from cbns.study.spec import bundled_specs

    names = "; ".join(f"{name}: {SPEC_COSTS[name][0]} cells, {SPEC_COSTS[name][1]}" if name in SPEC_COSTS else name
                      for name in bundled_specs())
    p.description = ("Train every cell of a study spec (datasets x towers x samplers x "
                     "batch sizes x memory sizes x seeds, plus option variants), each "
                     "into OUT/cells/NAME, then write OUT/report.md, OUT/results.json and "
                     "OUT/plots/*.png. Finished cells are never retrained: run the same "
                     "command again to resume an interrupted study. The spec format, "
                     "the outputs and what each bundled spec costs: docs/study.md.")
    p.add_argument("--spec", required=True, metavar="NAME|FILE.yaml",
                   help=f"a bundled spec ({names}; measured on 2 CPU cores) or a YAML file (format: docs/study.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="study directory (created; reused to resume)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads of every cell, 0 = all cores (default: the spec's)")
    p.add_argument("--list", action="store_true", help="list the cells and whether each is finished; train nothing")
    p.add_argument("--report-only", action="store_true",
                   help="write the report from the finished cells without training the rest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", metavar="DEVICE",
                   help="auto, cpu, cuda or cuda:N for every cell (default: the spec's, else auto); not part of a "
                        "cell's identity, like --threads")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cbns.errors import CbnsError
    from cbns.study import load_spec, run_study
    from cbns.study.cells import expand
    from cbns.study.runner import is_finished

    if args.threads is not None and args.threads < 0:
        raise CbnsError(f"--threads: must be >= 0, got {args.threads}")
    spec = load_spec(args.spec)
    if args.list:
        cells = expand(spec)
        for cell in cells:
            state = "done   " if is_finished(cell, Path(args.out)) else "pending"
            print(f"{state}  {cell.name}  [{', '.join(cell.sections)}]")
        print(f"{sum(is_finished(c, Path(args.out)) for c in cells)} of {len(cells)} cells finished")
        return 0
    command = f"cbns study --spec {shlex.quote(args.spec)} --out {shlex.quote(args.out)}"
    command += f" --threads {args.threads}" if args.threads is not None else ""
    command += f" --device {args.device}" if args.device is not None else ""
    from cbns.cli.process_settings import apply as apply_process_settings

    study = run_study(spec, args.out, threads=args.threads, progress=not args.no_progress,
                      train_missing=not args.report_only, command=command, device=args.device,
                      before_cell=lambda config: apply_process_settings(config.run.threads))
    done = len(study.results) - len(study.pending)
    print(f"{done} of {len(study.results)} cells finished ({len(study.trained)} trained now)")
    print(f"report: {study.report}")
    print(f"results: {study.results_json}")
    print(f"plots: {', '.join(str(p) for p in study.plots)}")
    return 0
