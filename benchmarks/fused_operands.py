"""Why the fused softmax adds the item bias with ``addmm`` instead of carrying it as a column.

    python benchmarks/fused_operands.py --threads 1

The training step's logits (``[B, D] x [D, B + M]``, Gowalla's default B = 2048, M = 4096) and an
evaluation block (``[1600, D] x [D, 40992]``, Gowalla's catalogue) are timed three ways, the three
alternating round by round in one process: the bias as one more column of both operands (inner
dimension D + 1: what the fused softmax did before, and what the exact top-K still does, so that
its scores equal the exported vectors' bit for bit), the plain product (inner dimension D, no
bias: the floor), and ``addmm`` (inner dimension D, the bias row added by the product). Prints the
median process CPU time of each and the ratios; one JSON line at the end.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {}
    for name, rows, cols in (("train logits", 2048, 6144), ("eval block", 1600, 40992)):
        d = args.dim
        users, items, bias = torch.randn(rows, d), torch.randn(cols, d), torch.randn(1, cols)
        users_col = torch.cat([users, torch.ones(rows, 1)], 1)
        items_col = torch.cat([items, bias.T], 1)
        buffer = torch.empty(rows, cols)
        ways = {
            f"column (K = {d + 1})": lambda: torch.mm(users_col, items_col.T, out=buffer),
            f"plain (K = {d}, no bias)": lambda: torch.mm(users, items.T, out=buffer),
            f"addmm (K = {d})": lambda: torch.addmm(bias, users, items.T, out=buffer),
        }
        times = {way: [] for way in ways}
        for round_ in range(args.rounds + 2):
            for way, run in ways.items():
                start = time.process_time()
                run()
                if round_ >= 2:  # two warm-up rounds
                    times[way].append(time.process_time() - start)
        medians = {way: statistics.median(t) * 1e3 for way, t in times.items()}
        column, plain, addmm = medians.values()
        print(f"{name} [{rows}, {d}] x [{d}, {cols}], {args.threads} thread(s):")
        for way, ms in medians.items():
            print(f"  {way:24s} {ms:8.1f} ms")
        print(f"  column / addmm {column / addmm:.3f}   addmm / plain {addmm / plain:.3f}")
        out[name] = {"column_ms": column, "plain_ms": plain, "addmm_ms": addmm,
                     "column_over_addmm": column / addmm, "addmm_over_plain": addmm / plain}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
