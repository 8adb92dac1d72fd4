"""How long loading takes and how much memory it holds, at scale: one JSON line.

Generates N interactions with Zipf-like users and items (user u drawn with probability
proportional to 1 / (u + 10)^0.8, item i to 1 / (i + 10)^1.0, so a few are very active or very
popular and most are not), writes them in a temporary directory as a Parquet table, a CSV table
or a LightGCN directory (train.txt plus a disjoint test.txt, 20% of the distinct pairs), then
loads them with ``cbns.data.load_data`` (the reader, the rating and duplicate rules, the split and
the validation carve: everything ``cbns train`` does before building the model) in a fresh
process, and prints:

    load_seconds             wall-clock of load_data in that process
    peak_rss_bytes           the process's peak resident memory (ru_maxrss), imports included
    baseline_rss_bytes       its resident memory after the imports, before loading
    peak_bytes_per_interaction   (peak - baseline) / rows in the file
    held_bytes               the bytes of the loaded dataset's arrays (pairs, id maps)
    held_bytes_per_interaction   held_bytes / rows in the file

(rows in the file: N for Parquet and CSV; the distinct pairs for LightGCN text, which holds each
pair once.) ``--repo DIR`` loads with the cbns of another checkout (e.g. an older commit).

Usage::

    python benchmarks/load_scale.py --format parquet --interactions 20000000
    python benchmarks/load_scale.py --format csv --interactions 5000000 --ids str [--quoted]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
# load the cbns of --repo, not an editable install's (its finder comes before sys.path)
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
                    and "__editable__" not in getattr(f, "__name__", "")]
sys.path.insert(0, sys.argv[2])
import numpy as np
from cbns.config import TrainConfig
from cbns.data import load_data

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096

import cbns
assert cbns.__file__.startswith(sys.argv[2]), cbns.__file__
config = TrainConfig(data=sys.argv[1], threads=1).validate()
before = rss()
start = time.perf_counter()
data = load_data(config)
seconds = time.perf_counter() - start
arrays = [data.train, data.valid, data.test, data.user_ids, data.item_ids]
held = sum(a.nbytes for a in arrays if a is not None)
for ids in (data.user_ids, data.item_ids):  # the Python str objects of text ids, beyond the pointers
    if ids is not None and ids.dtype == object:
        held += sum(sys.getsizeof(x) for x in ids)
print(json.dumps({"load_seconds": round(seconds, 2), "baseline_rss_bytes": before,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "held_bytes": held, "users": data.num_users, "items": data.num_items,
                  "pairs": len(data.train) + len(data.valid) + len(data.test),
                  "rows": data.rows.to_dict() if getattr(data, "rows", None) is not None else None}))
"""


def zipf_ids(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """``[n]`` ids in ``[0, size)``, id k drawn with probability proportional to 1 / (k + 10)^exponent."""
    weights = 1.0 / (np.arange(size) + 10.0) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n)), size - 1).astype(np.int64)


def generate(n: int, users: int, items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return zipf_ids(rng, n, users, 0.8), zipf_ids(rng, n, items, 1.0)


def write(fmt: str, users: np.ndarray, items: np.ndarray, ids: str, folder: Path,
          quoted: bool = False) -> tuple[Path, int]:
    """The dataset in ``folder`` in format ``fmt``: what --data takes, and how many rows (pairs) the
    files hold."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "lightgcn":
        keys = np.unique(users * (items.max() + 1) + items)
        pairs = np.stack([keys // (items.max() + 1), keys % (items.max() + 1)], axis=1)
        test = np.random.default_rng(1).random(len(pairs)) < 0.2
        for name, part in (("train.txt", pairs[~test]), ("test.txt", pairs[test])):
            starts = np.flatnonzero(np.r_[True, part[1:, 0] != part[:-1, 0]])
            with open(folder / name, "w") as fh:
                for lo, hi in zip(starts, np.r_[starts[1:], len(part)]):
                    fh.write(f"{part[lo, 0]} {' '.join(map(str, part[lo:hi, 1]))}\n")
        return folder, len(pairs)
    columns = {"user": users, "item": items}
    if ids == "str":
        columns = {name: pc.binary_join_element_wise(pa.scalar(name[0]), pa.array(v).cast(pa.string()), "")
                   for name, v in columns.items()}
    table = pa.table(columns)
    if fmt == "parquet":
        pq.write_table(table, folder / "log.parquet")
        return folder / "log.parquet", len(users)
    style = "all_valid" if quoted else "none"  # quoted fields go through Python's csv module (the exact reader)
    pacsv.write_csv(table, folder / "log.csv", pacsv.WriteOptions(quoting_style=style))
    return folder / "log.csv", len(users)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--format", choices=("parquet", "csv", "lightgcn"), default="parquet")
    p.add_argument("--interactions", type=int, default=20_000_000, metavar="N")
    p.add_argument("--users", type=int, help="distinct users to draw from (default: N / 20)")
    p.add_argument("--items", type=int, help="distinct items to draw from (default: N / 40)")
    p.add_argument("--ids", choices=("int", "str"), default="int",
                   help="Parquet/CSV: integer ids, or strings ('u123', 'i45')")
    p.add_argument("--quoted", action="store_true", help="CSV: quote every field")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                   help="the checkout whose cbns loads the file (default: this one)")
    args = p.parse_args()
    n = args.interactions
    users, items = args.users or max(n // 20, 1), args.items or max(n // 40, 1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data, rows = write(args.format, *generate(n, users, items, args.seed), args.ids, Path(tmp), args.quoted)
        written = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        child = subprocess.run([sys.executable, "-c", CHILD, str(data), str(args.repo)], capture_output=True,
                               text=True, check=False)
        if child.returncode != 0:
            raise SystemExit(child.stderr.strip().splitlines()[-1])
        report = json.loads(child.stdout)
    peak = report["peak_rss_bytes"] - report["baseline_rss_bytes"]
    print(json.dumps({"format": args.format, "ids": args.ids if args.format != "lightgcn" else "int",
                      "quoted": args.quoted, "interactions": n, "rows_in_file": rows, "file_bytes": size,
                      "write_seconds": round(written, 1), **report,
                      "peak_bytes_per_interaction": round(peak / rows, 1),
                      "held_bytes_per_interaction": round(report["held_bytes"] / rows, 1)}))


if __name__ == "__main__":
    main()
