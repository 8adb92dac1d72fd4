"""Host reads over a whole training run: how often a GPU running ``cbns train`` would wait for the host.

    python benchmarks/run_syncs.py                          # MovieLens-100k, the default recipe, 3 epochs
    python benchmarks/run_syncs.py --epochs 1 --option sparse_updates=false

It trains with :func:`cbns.train` exactly as ``cbns train --data ml-100k`` does (loading, the epoch
loop, validation after every epoch, the test), all inside one
:class:`cbns.training.dispatch_count.DispatchCounter`, and counts the optimizer steps with a callback.
It prints one JSON line: ``steps``, ``ops``, ``reads`` (ops that would make a GPU wait for the host:
values read back, data-dependent shapes, copies to host memory), ``reads_per_step`` and the reads
by kind. On the CPU every such op is counted even where its tensor lives on the host, so the count
is an upper bound of what a GPU would wait for.

Loading the data and writing nothing (no ``out``) happen inside the counted region, as in a real run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cbns, not an installed one
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


def _value(text: str):
    """A command-line option value: bool, int, float or string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ML100K), help="dataset (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a TrainConfig option over the defaults (repeatable)")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        print(f"run_syncs: {args.data}: no such dataset", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    import cbns
    from cbns.training.callbacks.base import Callback
    from cbns.training.dispatch_count import DispatchCounter

    class StepCount(Callback):
        steps = 0

        def on_step_end(self, trainer) -> None:
            StepCount.steps += 1

    options = dict(item.split("=", 1) for item in args.option)
    config = cbns.TrainConfig(data=args.data, epochs=args.epochs, threads=1,
                              **{k: _value(v) for k, v in options.items()})
    counter = DispatchCounter()
    with counter:
        result = cbns.train(config, progress=False, verbose=False, callbacks=[StepCount()])
    steps = StepCount.steps
    print(json.dumps({"data": args.data, "epochs": args.epochs, "options": options, "steps": steps,
                      "ops": counter.ops, "reads": counter.reads,
                      "reads_per_step": round(counter.reads / max(steps, 1), 3),
                      "read_kinds": dict(counter.read_kinds.most_common()),
                      "valid_recall@20": round(result.valid.get("recall@20", float("nan")), 4),
                      "test_recall@20": round(result.test.get("recall@20", float("nan")), 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
