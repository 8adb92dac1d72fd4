"""This tree's training step against an earlier commit's, same configuration, side by side.

    python benchmarks/speed_vs_commit.py --before 12b0706 --threads 1 --rounds 4 --steps 20 --epochs 3

Checks the ``--before`` commit out into a temporary ``git worktree``. Both trees then run one
configuration: this tree's :class:`cbns.config.TrainConfig` defaults for the options both know
(:data:`SHARED`; defaults move between commits, so the earlier tree is given them explicitly),
with ``--memory-size`` and ``--dim`` to override. The two alternate (a fresh process each time, in
swapped order every other round), each timing ``--steps`` steps after a warm-up on the same seeded
batches. With ``--epochs`` both then train that many epochs (``cbns train --config``) and the
validation recall per epoch and the test metrics are compared. Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

#: Options added after 12b0706, at the value that gives that commit's behaviour; a tree that knows
#: one gets it, so both trees time and train the same thing (this tree's learned item bias, lr
#: schedule and popularity prior are off).
LATER_OPTIONS = {"item_bias": False, "lr_schedule": "constant", "popularity_prior": "off"}

#: The options that define a step and a run, known to every tree from 12b0706 on.
SHARED = ("sampler", "batch_size", "memory_size", "warmup_steps", "bank_mode", "item_side", "num_negatives",
          "popularity_alpha", "dim", "normalize", "temperature", "logq_correction", "init_std", "lr",
          "weight_decay", "seed", "valid_fraction", "eval_every", "ks")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="the commit to compare against (required)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process (default: %(default)s)")
    parser.add_argument("--memory-size", type=int, help="bank size M (default: this tree's default)")
    parser.add_argument("--dim", type=int, help="embedding width (default: this tree's default)")
    parser.add_argument("--item-side", choices=("joint", "split"), help="CBNS item side (default: this tree's default)")
    parser.add_argument("--epochs", type=int, default=0, help="also train both this many epochs (default: none)")
    parser.add_argument("--worker", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(Path(args.worker), args.threads, args.steps, json.loads(args.options))
    if not args.before:
        parser.error("--before is required")
    options = shared_options(memory_size=args.memory_size, dim=args.dim, item_side=args.item_side)
    print(f"configuration: {options}", flush=True)

    with tempfile.TemporaryDirectory(prefix="cbns-before-") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(old), args.before],
                       check=True)
        try:
            trees = {"before": old, "after": HERE}
            times = {name: {"cpu": [], "wall": []} for name in trees}
            peak = {name: 0 for name in trees}
            for r in range(args.rounds):
                for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    got = _time_tree(trees[name], args.threads, args.steps, options)
                    for clock in ("cpu", "wall"):
                        times[name][clock] += got[clock]
                    peak[name] = max(peak[name], got["peak_rss"])
                    print(f"round {r + 1} {name:6s} cpu {statistics.median(got['cpu']) * 1e3:7.1f} ms/step  "
                          f"wall {statistics.median(got['wall']) * 1e3:7.1f} ms/step", flush=True)
            med = {n: {c: statistics.median(v) for c, v in t.items()} for n, t in times.items()}
            result = {"before": args.before, "threads": args.threads, "steps": args.rounds * args.steps,
                      "memory_size": options["memory_size"], "dim": options["dim"],
                      "before_step_ms_cpu": round(med["before"]["cpu"] * 1e3, 2),
                      "after_step_ms_cpu": round(med["after"]["cpu"] * 1e3, 2),
                      "speedup_cpu": round(med["before"]["cpu"] / med["after"]["cpu"], 3),
                      "before_step_ms_wall": round(med["before"]["wall"] * 1e3, 2),
                      "after_step_ms_wall": round(med["after"]["wall"] * 1e3, 2),
                      "speedup_wall": round(med["before"]["wall"] / med["after"]["wall"], 3),
                      "before_peak_rss_mb": round(peak["before"] / 2**20),
                      "after_peak_rss_mb": round(peak["after"] / 2**20)}
            print(f"step: before {result['before_step_ms_cpu']} ms, after {result['after_step_ms_cpu']} ms "
                  f"(CPU), speed-up {result['speedup_cpu']}x; wall {result['speedup_wall']}x; peak RSS "
                  f"{result['before_peak_rss_mb']} MB before, {result['after_peak_rss_mb']} MB after", flush=True)
            if args.epochs:
                result.update(_compare_training(trees, args.threads, args.epochs, options, Path(tmp)))
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)], check=False)
    print(json.dumps(result))
    return 0


def shared_options(**overrides) -> dict:
    """This tree's defaults for :data:`SHARED`, with the overrides that are not None."""
    sys.path.insert(0, str(HERE))
    from cbns.config import TrainConfig

    defaults = TrainConfig()
    options = {name: defaults[name] for name in SHARED}
    options.update({k: v for k, v in overrides.items() if v is not None})
    return options


def _time_tree(root: Path, threads: int, steps: int, options: dict) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(root),
                          "--threads", str(threads), "--steps", str(steps), "--options", json.dumps(options)],
                         check=True, capture_output=True, text=True, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(root: Path, threads: int, steps: int, options: dict) -> int:
    """Time ``steps`` steps of ``options`` with the package of ``root`` (its API of 12b0706 on, in
    either layout)."""
    import resource
    import time

    sys.path.insert(0, str(root))
    import torch

    from cbns.config import TrainConfig
    try:  # the package laid out by stage, the loss module owning the bank
        from cbns.api import assemble
        from cbns.data.loading import load_data
        from cbns.training.trainer import Trainer
        try:  # the command line owning the process settings
            from cbns.cli.process_settings import set_threads, tune_allocator
        except ImportError:
            from cbns.training.process_settings import set_threads, tune_allocator

        def make_trainer(config, data):
            return Trainer(config, data, *assemble(config, data), progress=False, verbose=False)
    except ImportError:  # the flat layout before it (12b0706 .. e4dc95a)
        from cbns.build import build_loss, build_model, build_sampler
        from cbns.run_dir import load_data
        from cbns.runtime import set_threads, tune_allocator
        from cbns.train import Trainer

        def make_trainer(config, data):
            return Trainer(config, data, build_model(config, data.num_users, data.num_items),
                           build_sampler(config, data.item_counts()), build_loss(config), progress=False,
                           verbose=False)

    assert Path(sys.modules["cbns"].__path__[0]).resolve() == (root / "cbns").resolve()
    set_threads(threads)
    tune_allocator()
    later = {k: v for k, v in LATER_OPTIONS.items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**options, **later, threads=threads)
    data = load_data(config)
    trainer = make_trainer(config, data)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    batches = torch.split(order, config.sampler.batch_size)
    warmup = config.sampler.memory_size // config.sampler.batch_size + 2
    cpu, wall = [], []
    for i in range(warmup + steps):
        pairs = trainer.train_pairs[batches[i % len(batches)]]
        c, w = time.process_time(), time.perf_counter()
        trainer.step(pairs)
        if i >= warmup:
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"cpu": cpu, "wall": wall, "peak_rss": peak}))
    return 0


def _compare_training(trees: dict, threads: int, epochs: int, options: dict, tmp: Path) -> dict:
    """Train both trees ``epochs`` epochs (one after the other) and compare their metrics."""
    import yaml

    metrics = {}
    for name, root in trees.items():
        known = subprocess.run([sys.executable, "-c", "from cbns.config import TrainConfig; "
                                "print(' '.join(TrainConfig.__dataclass_fields__))"],
                               check=True, capture_output=True, text=True, cwd=root).stdout.split()
        spec = tmp / f"config-{name}.yaml"
        later = {k: v for k, v in LATER_OPTIONS.items() if k in known}
        spec.write_text(yaml.safe_dump({**options, **later}, sort_keys=False))
        out = tmp / f"run-{name}"
        subprocess.run([sys.executable, "-m", "cbns", "train", "--config", str(spec), "--epochs", str(epochs),
                        "--patience", str(epochs), "--threads", str(threads), "--no-progress", "--out", str(out)],
                       check=True, cwd=root, capture_output=True, text=True)
        metrics[name] = json.loads((out / "metrics.json").read_text())
    print(f"{'epoch':>5s} {'before R@20':>12s} {'after R@20':>11s} {'before s':>9s} {'after s':>8s}")
    for b, a in zip(metrics["before"]["history"], metrics["after"]["history"]):
        print(f"{b['epoch']:5d} {b['valid']['recall@20']:12.4f} {a['valid']['recall@20']:11.4f} "
              f"{b['seconds']:9.1f} {a['seconds']:8.1f}")
    key = "recall@20"
    return {"epochs": epochs,
            "before_valid_recall@20": [round(h["valid"][key], 4) for h in metrics["before"]["history"]],
            "after_valid_recall@20": [round(h["valid"][key], 4) for h in metrics["after"]["history"]],
            "before_test_recall@20": round(metrics["before"]["test"][key], 4),
            "after_test_recall@20": round(metrics["after"]["test"][key], 4),
            "before_epoch_seconds_wall": round(metrics["before"]["seconds_per_epoch"], 1),
            "after_epoch_seconds_wall": round(metrics["after"]["seconds_per_epoch"], 1)}


if __name__ == "__main__":
    raise SystemExit(main())
