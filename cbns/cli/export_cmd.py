"""``cbns export RUN_DIR --to DIR``: write a run's serving bundle (served without torch)."""
from __future__ import annotations

import argparse

from cbns.cli.index_cmd import add_threads_option, apply_threads


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Write a self-contained serving bundle of a finished run: the user tower as ONNX (pooled, gru "
                     "and features towers; an ID tower folds histories in), the item vectors, the id maps, the seen "
                     "items, the item index when one was built, and manifest.json with the SHA-256 of every file. "
                     "The ONNX tower is checked against the run's torch tower before the bundle is written. "
                     "cbns.serve.bundle.load_bundle(DIR) serves it with numpy, onnxruntime and faiss, without torch.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by cbns train")
    p.add_argument("--to", required=True, metavar="DIR",
                   help="the bundle directory: new, empty, or a bundle to replace")
    p.add_argument("--overwrite", action="store_true", help="replace a bundle already at DIR (never anything else)")
    add_threads_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cbns.serve.export import export_bundle

    apply_threads(args.threads)
    manifest = export_bundle(args.run_dir, args.to, overwrite=args.overwrite)
    check = manifest["onnx_check"]
    if manifest["encoder"] is None:
        encoder = "trained users only (a user tower built in Python)"
    elif check is None:
        encoder = "history queries by fold-in over the item vectors"
    else:
        encoder = (f"{manifest['user_tower']} user tower as ONNX, max abs error {check['max_abs_error']:.2g} "
                   f"against torch over {check['queries']}")
    how = f"index {manifest['index']}" if manifest["index"] else "exact scoring"
    size = sum(entry["bytes"] for entry in manifest["files"].values())
    print(f"exported {manifest['num_users']:,} users x {manifest['num_items']:,} items ({how}; {encoder}) "
          f"-> {args.to} ({len(manifest['files'])} files, {size / 2**20:.1f} MiB)")
    return 0
