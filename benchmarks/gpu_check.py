"""The prepared check for a GPU: seven parts, each in its own process, one JSON file each.

    python benchmarks/gpu_check.py --out gpu-check                     # on a GPU: at most 8 minutes
    python benchmarks/gpu_check.py --out /tmp/gc --device cpu --quick  # what CI runs (about a minute)

Parts (``--out DIR/<part>.json``; ``--parts`` picks some):

``cuda_tests``
    ``pytest tests/cuda``: the outcome counts and the last lines of its output.
``sync_debug``
    One training step of each configuration (sampler x user tower x sparse/dense updates x
    fp32/bf16) after warm-up steps that fill the bank, under ``torch.cuda.set_sync_debug_mode
    ("error")``: a step that makes the GPU wait for the host fails with the op's error. Without CUDA
    the same step runs under a dispatch mode that counts the ops that would wait (a CPU proxy).
``timing``
    CBNS fp32 with sparse and with dense updates, CBNS bf16 and in-batch at the default recipe on
    the bundled Gowalla: milliseconds per step from CUDA events around ``--steps`` steps (batches
    copied to the device before the timed loop, from pinned memory), then a 3-step
    ``torch.profiler`` trace: kernels per step and the busy fraction (the union of kernel
    intervals over the wall time of the traced steps).
``train``
    ``cbns train --epochs 1`` end to end on the bundled Gowalla, in this process: the epoch's
    seconds, each evaluation's seconds (the device synchronised around it) and the peak memory.
``bf16``
    The fused sampled softmax (loss, user and item gradients) in bfloat16 and in float32 against
    float64 at B 2048, M 4096, D 256, T 0.1, unit vectors, each positive aligned with its user by a
    random amount (so that logits reach 1/T): relative errors.
``evaluation``
    Full-ranking evaluation of Gowalla's validation users against its floor on the same device (the
    score GEMM and ``torch.topk`` over the same blocks, nothing else).
``memory_budget``
    :mod:`benchmarks.memory_budget` at one budget (synthetic sequences).

Each part runs in a child process with its own time limit, so one that fails, hangs or takes the
CUDA context down writes its error into its JSON and the others still run. A part that needs CUDA
is written as ``{"status": "skipped", "reason": ...}`` without it. ``--quick`` runs every part at
small sizes. Needs torch, numpy and pytest (faiss is not used); it imports this checkout's
``cbns``, so nothing has to be installed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cbns
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: name -> (seconds allowed on a GPU, seconds allowed with --quick). The GPU limits add up to 460 s;
#: the quick ones only catch a hang (a shared CI machine can be several times slower than usual).
PARTS = {"cuda_tests": (90, 300), "sync_debug": (80, 300), "timing": (80, 300), "train": (100, 300),
         "bf16": (20, 300), "evaluation": (40, 300), "memory_budget": (50, 300)}
#: parts with nothing to run without CUDA
CUDA_ONLY = {"cuda_tests": "tests/cuda skips every test without a CUDA device"}

#: Small shapes of ``--quick``: every code path, a bank that fills in a few steps.
QUICK_SHAPES = {"batch_size": 64, "memory_size": 128, "num_negatives": 32, "dim": 16, "hidden_dim": 16,
                "max_history": 8}

#: The timed configurations of ``timing``.
TIMED = {"cbns-fp32-sparse": {}, "cbns-fp32-dense": {"sparse_updates": False}, "cbns-bf16": {"precision": "bf16"},
         "inbatch-fp32": {"sampler": "inbatch"}}

#: ATen ops that make a GPU wait for the host (read a value, or size an output by the data).
HOST_READS = frozenset({"aten._local_scalar_dense.default", "aten.item.default", "aten.nonzero.default",
                        "aten.is_nonzero.default", "aten.equal.default", "aten.masked_select.default",
                        "aten._unique2.default", "aten.unique_dim.default", "aten.unique_consecutive.default",
                        "aten.repeat_interleave.Tensor"})


# ----------------------------------------------------------------------------------------------
# the parent: one child process per part


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for one JSON file per part")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quick", action="store_true", help="small sizes: every part that can run, in about a minute")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps of `timing` (200; 5 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each part")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for all parts together (default 475 on a GPU, none with --quick); a part "
                             "gets the smaller of its own limit and what is left")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # the child: run this one part
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.part:
        return run_part(args.part, args, out)
    names = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    started, statuses = time.perf_counter(), {}
    budget = args.budget_s if args.budget_s is not None else (math.inf if args.quick else 475.0)
    for name in names:
        left = budget - (time.perf_counter() - started)
        if left < 5:
            write_json(out / f"{name}.json", {"part": name, "status": "error",
                                             "error": f"not run: the {budget:.0f} s budget was spent"})
            statuses[name] = "error"
        else:
            limit = min(PARTS[name][1 if args.quick else 0], left)
            statuses[name] = run_child(name, argv if argv is not None else sys.argv[1:], out, limit)
        print(f"{name:14s} {statuses[name]:8s} {time.perf_counter() - started:6.1f}s", flush=True)
    print(json.dumps({"out": str(out), "parts": statuses, "wall_s": round(time.perf_counter() - started, 1)}))
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


def run_child(name: str, argv: list[str], out: Path, limit: float) -> str:
    """Run part ``name`` in a child process; write its JSON when the child could not (a crash, a
    hang past ``limit`` seconds). Returns the part's status."""
    path = out / f"{name}.json"
    path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--part", name]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env, cwd=REPO)
        problem = None if proc.returncode == 0 else f"exit status {proc.returncode}"
        tail = (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        problem = f"timed out after {limit:.0f} s"
        tail = ((exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace"))[-3000:]
    if path.is_file():
        try:
            return json.loads(path.read_text()).get("status", "error")
        except ValueError:
            pass
    write_json(path, {"part": name, "status": "error", "error": problem or "wrote no result",
                      "seconds": round(time.perf_counter() - start, 2), "output_tail": tail})
    return "error"


def write_json(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------
# the child: one part


def run_part(name: str, args, out: Path) -> int:
    import torch

    from cbns.machine import resolve_device

    start = time.perf_counter()
    record = {"part": name, "torch": torch.__version__, "quick": args.quick}
    status = 0
    try:
        torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        record["device"] = str(device)
        record["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
        if name in CUDA_ONLY and device.type != "cuda":
            record.update(status="skipped", reason=f"needs CUDA: {CUDA_ONLY[name]}")
        else:
            record.update(PART_FUNCTIONS[name](device, args))
            record.setdefault("status", "ok")
    except BaseException as exc:  # the part's error is its result
        record.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000],
                      traceback=traceback.format_exc()[-4000:])
        status = 1
    record["seconds"] = round(time.perf_counter() - start, 2)
    write_json(out / f"{name}.json", record)
    return status


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def part_cuda_tests(device, args) -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cuda"],
                          cwd=REPO, capture_output=True, text=True, timeout=PARTS["cuda_tests"][0] - 5)
    lines = proc.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    counts = {}
    for piece in summary.strip("= ").split(","):
        words = piece.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    return {"status": "ok" if proc.returncode == 0 else "error", "returncode": proc.returncode,
            "summary": summary, "counts": counts, "output_tail": (proc.stdout + proc.stderr)[-4000:]}


def synthetic_data(num_users: int, num_items: int, num_pairs: int, seed: int = 0):
    """Timed (user, item) pairs with Zipf-like item popularity and one categorical user attribute:
    every sampler and every user tower can run on it."""
    import numpy as np

    from cbns.data.features import FeatureTable, categorical_column
    from cbns.data.interactions import Interactions

    rng = np.random.default_rng(seed)
    items = (rng.zipf(1.2, 2 * num_pairs) - 1) % num_items
    pairs = np.unique(np.stack([rng.integers(0, num_users, 2 * num_pairs), items], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:num_pairs]]
    n, held = len(pairs), max(len(pairs) // 20, 1)
    times = rng.random(n) * 1e6
    table = FeatureTable(num_users, [categorical_column("group", list(rng.integers(0, 5, num_users)))])
    return Interactions("synthetic", num_users, num_items, train=pairs[:n - 2 * held],
                        valid=pairs[n - 2 * held:n - held], test=pairs[n - held:],
                        train_time=times[:n - 2 * held], valid_time=times[n - 2 * held:n - held],
                        test_time=times[n - held:], user_features=table)


def build_trainer(options: dict, data, device):
    """The trainer ``cbns train`` builds for ``options`` over the defaults, on ``data``."""
    from cbns.api import assemble, history_context
    from cbns.config import TrainConfig
    from cbns.training.recipe import resolve as resolve_recipe
    from cbns.training.trainer import Trainer

    config = TrainConfig(**{"data": "synthetic", "threads": 1, "device": str(device), **options}).validate()
    config, _ = resolve_recipe(config, data.num_items, len(data.train))
    model, objective = assemble(config, data)
    return Trainer(config, data, model, objective, progress=False, verbose=False,
                   contexts=history_context(config, data, model))


def device_batches(trainer, count: int) -> list:
    """``count`` batches of the first epoch's order as index tensors already on the device: the
    copies (pinned, non-blocking) happen here, before any timed loop."""
    batches = trainer.epoch_batches()
    picked = [batches[k % len(batches)] for k in range(count)]
    return [(index.to(trainer.device, non_blocking=True), index) for index in picked]


def step(trainer, batch) -> None:
    index, host_index = batch
    trainer.step(trainer.train_pairs[index], trainer.context_of(host_index), global_rows=len(host_index))


def warmup_steps(trainer) -> int:
    cfg = trainer.config
    return max(2, cfg.sampler.memory_size // cfg.sampler.batch_size + cfg.sampler.warmup_steps + 1)


class HostReadCounter:
    """A dispatch mode counting every op and those of :data:`HOST_READS` (the CPU stand-in for the
    sync debug mode)."""

    def __new__(cls):
        from torch.utils._python_dispatch import TorchDispatchMode

        class _Mode(TorchDispatchMode):
            def __init__(self):
                super().__init__()
                self.ops, self.reads = 0, {}

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                self.ops += 1
                if str(func) in HOST_READS:
                    self.reads[str(func)] = self.reads.get(str(func), 0) + 1
                return func(*args, **(kwargs or {}))

        return _Mode()


def part_sync_debug(device, args) -> dict:
    import torch

    data = synthetic_data(300, 200, 5000) if args.quick else synthetic_data(20000, 5000, 300_000)
    shapes = QUICK_SHAPES if args.quick else {}
    configs = {}
    from gpu_readiness import CONFIGS  # the configurations the CPU count covers, one list

    for name, options in CONFIGS.items():
        entry = {}
        try:
            trainer = build_trainer({**shapes, **options}, data, device)
            batches = device_batches(trainer, warmup_steps(trainer) + 1)
            for batch in batches[:-1]:
                step(trainer, batch)
            synchronize(device)
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("error")
                try:
                    step(trainer, batches[-1])
                finally:
                    torch.cuda.set_sync_debug_mode(0)
                synchronize(device)
                entry["ok"] = True
            else:
                with HostReadCounter() as mode:
                    step(trainer, batches[-1])
                entry.update(ok=not mode.reads, ops=mode.ops, host_reads=sum(mode.reads.values()),
                             read_kinds=mode.reads)
        except Exception as exc:  # the op that synchronised, or any other failure of this configuration
            entry.update(ok=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                         where=_innermost_cbns_frame(exc))
        configs[name] = entry
    mode = "torch.cuda.set_sync_debug_mode('error')" if device.type == "cuda" else \
        "dispatch mode counting host-read ops (no CUDA)"
    return {"mode": mode, "configs": configs, "all_ok": all(c["ok"] for c in configs.values()),
            "data": {"users": data.num_users, "items": data.num_items, "train": len(data.train)}}


def _innermost_cbns_frame(exc: BaseException) -> str | None:
    """``file:line`` of the deepest frame of the package in ``exc``'s traceback."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if "cbns" in path.parts:
            found = f"{path.relative_to(REPO) if REPO in path.parents else path}:{frame.lineno}"
    return found


def gowalla(quick: bool):
    from cbns.config import TrainConfig
    from cbns.data.holdout import carve_validation
    from cbns.data.loading import load_data
    from cbns.data.subset import user_subset

    base = TrainConfig()
    data = load_data(base)
    if quick:  # 3,000 users of Gowalla
        data = user_subset(data, 3000, seed=0)
    if not len(data.valid):
        data = carve_validation(data, base.data.valid_fraction, base.training.seed)
    return data


def part_timing(device, args) -> dict:
    import torch

    data = gowalla(args.quick)
    steps = args.steps or (5 if args.quick else 200)
    shapes = dict(batch_size=256, memory_size=512, dim=32) if args.quick else {}
    out = {"steps": steps, "clock": "CUDA events" if device.type == "cuda" else "time.perf_counter", "configs": {}}
    for name, options in TIMED.items():
        trainer = build_trainer({"data": "gowalla", **shapes, **options}, data, device)
        cfg = trainer.config
        warm = warmup_steps(trainer) + 3
        batches = device_batches(trainer, warm + steps + 3)
        for batch in batches[:warm]:
            step(trainer, batch)
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            for batch in batches[warm:warm + steps]:
                step(trainer, batch)
            end.record()
            end.synchronize()
            ms = begin.elapsed_time(end) / steps
        else:
            start = time.perf_counter()
            for batch in batches[warm:warm + steps]:
                step(trainer, batch)
            ms = 1000 * (time.perf_counter() - start) / steps
        entry = {"ms_per_step": round(ms, 3), "examples_per_s": round(cfg.sampler.batch_size * 1000 / ms),
                 "batch_size": cfg.sampler.batch_size, "memory_size": cfg.sampler.memory_size,
                 "dim": cfg.model.dim, "sampler": cfg.sampler.name, "precision": cfg.training.precision,
                 "sparse_updates": cfg.training.sparse_updates}
        if device.type == "cuda":
            entry["max_allocated_bytes"] = int(torch.cuda.max_memory_allocated(device))
        entry["trace"] = profile_steps(trainer, batches[warm + steps:], device)
        out["configs"][name] = entry
    return out


def profile_steps(trainer, batches, device) -> dict:
    """A ``torch.profiler`` trace of ``batches`` (3) steps: kernels per step and the busy fraction."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for batch in batches:
            step(trainer, batch)
        synchronize(device)
        wall_us = 1e6 * (time.perf_counter() - start)
    if device.type != "cuda":
        ops = sum(1 for e in prof.events() if e.name.startswith("aten::"))
        return {"steps": len(batches), "aten_events_per_step": round(ops / len(batches), 1),
                "kernels_per_step": None, "busy_fraction": None, "reason": "kernels are counted on a GPU only"}
    from torch.autograd import DeviceType

    device_events = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    kernels = [e for e in device_events if not e.name.lower().startswith(("memcpy", "memset"))]
    spans = sorted((e.time_range.start, e.time_range.end) for e in device_events)
    busy, reach = 0.0, -math.inf
    for lo, hi in spans:  # the union of the kernel intervals
        lo = max(lo, reach)
        if hi > lo:
            busy += hi - lo
        reach = max(reach, hi)
    return {"steps": len(batches), "kernels_per_step": round(len(kernels) / len(batches), 1),
            "copies_and_fills_per_step": round((len(device_events) - len(kernels)) / len(batches), 1),
            "busy_fraction": round(busy / wall_us, 3) if wall_us > 0 else None,
            "kernel_us_per_step": round(busy / len(batches), 1), "wall_us_per_step": round(wall_us / len(batches), 1)}


def part_train(device, args) -> dict:
    """``cbns train --epochs 1`` through the command line's own entry, with each evaluation timed."""
    import torch

    from cbns.cli import main as cbns_main
    from cbns.evaluation.evaluator import Evaluator

    evaluations = []
    original = Evaluator.evaluate

    def timed(self, model, part):
        synchronize(device)
        start = time.perf_counter()
        result = original(self, model, part)
        synchronize(device)
        evaluations.append({"part": part, "seconds": round(time.perf_counter() - start, 3)})
        return result

    Evaluator.evaluate = timed
    with tempfile.TemporaryDirectory(prefix="cbns-gpu-check-") as tmp:
        run = Path(tmp) / "run"
        argv = ["train", "--device", str(device), "--epochs", "1", "--out", str(run), "--no-progress",
                "--threads", str(args.threads)]
        if args.quick:  # a sequence file of 600 users: seconds on a CPU
            argv += ["--data", str(synthetic_sequences(Path(tmp) / "seqs.txt")), "--batch-size", "128",
                     "--memory-size", "256", "--dim", "16"]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cbns_main(argv)
        wall = time.perf_counter() - start
        if code != 0:
            return {"status": "error", "error": f"cbns train exited {code}", "stderr_tail": err.getvalue()[-3000:]}
        metrics = json.loads((run / "metrics.json").read_text())
    record = metrics["history"][0] if metrics.get("history") else {}
    return {"argv": argv, "wall_s": round(wall, 2), "epoch_s": record.get("seconds"), "phases": record.get("phases"),
            "evaluations": evaluations, "peak_memory": metrics.get("peak_memory"),
            "valid": record.get("valid"), "test": metrics.get("test"), "recipe": metrics.get("recipe")}


def part_bf16(device, args) -> dict:
    """The fused sampled softmax in bfloat16 and float32 against float64, joint and split."""
    import torch
    import torch.nn.functional as F

    from cbns.objective.fused_softmax import fused_sampled_softmax

    B, M, D, T = (256, 512, 64, 0.1) if args.quick else (2048, 4096, 256, 0.1)
    g = torch.Generator().manual_seed(0)
    users = F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=1)
    # each positive aligned with its user as training makes it (cosine from 0 to about 0.97), so
    # that logits reach 1/T and P[i, t_i] nears 1 on many rows: where bf16 rounding and cancellation show
    align = 4 * torch.rand(B, 1, generator=g, dtype=torch.float64)
    fresh = F.normalize(align * users + torch.randn(B, D, generator=g, dtype=torch.float64) / D ** 0.5, dim=1)
    frozen = F.normalize(torch.randn(M, D, generator=g, dtype=torch.float64), dim=1)
    positive = torch.randint(0, 4 * B, (B,), generator=g)  # repeats: accidental hits among the fresh
    bank_ids = torch.randint(0, 4 * B, (M,), generator=g)
    candidates = torch.cat([positive, bank_ids])
    bias = -torch.log(torch.rand(B + M, generator=g, dtype=torch.float64) * 0.9 + 0.1)  # -log q, in [0, 2.3]
    target = torch.arange(B)
    out = {"shape": {"B": B, "M": M, "D": D, "T": T}, "results": {}}
    for split in (False, True):  # the float64 reference on the device too (a GPU's float64 is fast)
        want = [x.cpu() for x in _reference(*(x.to(device) for x in (users, fresh, frozen, bias, positive,
                                                                      candidates, target)), T, split)]
        for dtype in (torch.float32, torch.bfloat16):
            u = users.float().to(device).requires_grad_()
            f = fresh.float().to(device).requires_grad_()
            loss = fused_sampled_softmax(u, f, frozen.float().to(device), bias.float().to(device),
                                         positive.to(device), candidates.to(device), target.to(device), T, split,
                                         compute_dtype=dtype)
            loss.backward()
            got = (loss.detach().double().cpu(), u.grad.double().cpu(), f.grad.double().cpu())
            out["results"][f"{'split' if split else 'joint'}-{str(dtype).removeprefix('torch.')}"] = {
                "loss_rel_error": _rel(got[0], want[0]), "grad_users_rel_error": _rel(got[1], want[1]),
                "grad_items_rel_error": _rel(got[2], want[2]), "loss": float(got[0]), "loss_fp64": float(want[0])}
    return out


def _reference(users, fresh, frozen, bias, positive, candidates, target, temperature, split):
    """Loss and gradients in float64 by autograd: logits ``U C^T / T + b``, every other copy of a
    row's positive id masked, cross-entropy; split: the item side's softmax over the fresh columns."""
    import torch

    u, f = users.clone().requires_grad_(), fresh.clone().requires_grad_()
    mask = candidates[None, :] == positive[:, None]
    mask[torch.arange(len(target), device=target.device), target] = False

    def cross_entropy(uu, ff, columns=None):
        logits = torch.cat([uu @ ff.T, uu @ frozen.T], 1) / temperature + bias
        logits = logits.masked_fill(mask, -torch.inf)
        if columns is not None:
            logits = logits[:, :columns]
        return torch.nn.functional.cross_entropy(logits, target)

    loss = cross_entropy(u, f)
    if not split:
        gu, gf = torch.autograd.grad(loss, (u, f))
    else:
        (gu,) = torch.autograd.grad(cross_entropy(u, f.detach()), (u,))
        (gf,) = torch.autograd.grad(cross_entropy(u.detach(), f, columns=f.shape[0]), (f,))
    return loss.detach(), gu, gf


def _rel(got, want) -> float:
    return float((got - want).norm() / want.norm().clamp_min(1e-300))


def part_evaluation(device, args) -> dict:
    import numpy as np
    import torch

    from cbns.api import assemble
    from cbns.config import TrainConfig
    from cbns.evaluation.ranking import full_ranking, ranking_matrices, scoring_vectors
    from cbns.ranking.topk import default_chunk, padded_width

    data = gowalla(args.quick)
    config = TrainConfig(device=str(device), **({"dim": 32} if args.quick else {})).validate()
    model, _ = assemble(config, data)
    model.to(device)
    users, items, column = scoring_vectors(model, data)
    relevant, exclude = ranking_matrices(data, "valid")
    ks = config.evaluation.ks
    rows_np = np.flatnonzero(np.diff(relevant.indptr) > 0)
    rows = torch.from_numpy(rows_np).to(device)
    chunk = default_chunk(padded_width(items.shape[0]))
    kmax = min(max(ks), items.shape[0])

    def floor():
        for s in range(0, len(rows), chunk):
            torch.topk(users[rows[s:s + chunk]] @ items.T, kmax, dim=1)

    def full():
        full_ranking(users, items, relevant, exclude, ks, item_bias=column)

    repeats = 1 if args.quick else 3
    timings = {}
    for name, fn in (("evaluate", full), ("floor", floor)):
        fn()  # warm-up
        synchronize(device)
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            synchronize(device)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    return {"users": int(len(rows_np)), "items": int(items.shape[0]), "dim": int(items.shape[1]),
            "evaluate_s": round(timings["evaluate"], 4), "floor_s": round(timings["floor"], 4),
            "ratio_to_floor": round(timings["evaluate"] / timings["floor"], 3), "repeats": repeats}


def synthetic_sequences(path: Path, users: int = 600, items: int = 400, seed: int = 0) -> Path:
    """A sequence file (``user item item ...`` per line) with Zipf-like item popularity."""
    import numpy as np

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    lines = [" ".join(map(str, [u, *rng.choice(items, size=rng.integers(5, 15), p=popularity)]))
             for u in range(users)]
    path.write_text("\n".join(lines) + "\n")
    return path


def part_memory_budget(device, args) -> dict:
    import memory_budget

    with tempfile.TemporaryDirectory(prefix="cbns-gpu-check-") as tmp:
        if args.quick:
            seqs = synthetic_sequences(Path(tmp) / "seqs.txt")
            extra, budget = ["--quick", "--batches", "64,256", "--memories", "1"], 40.0
        else:
            seqs = synthetic_sequences(Path(tmp) / "seqs.txt", users=20000, items=5000)
            extra, budget = ["--batches", "1024,2048,4096,8192", "--epochs", "2"], 2048.0
        argv = ["--data", str(seqs), "--budget-mb", str(budget), "--device", str(device), "--out",
                str(Path(tmp) / "runs"), "--threads", str(args.threads), *extra]
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            memory_budget.main(argv)
    lines = buffer.getvalue().strip().splitlines()
    return {"argv": argv, "result": json.loads(lines[-1]), "table": lines[:-1][-20:]}


PART_FUNCTIONS = {"cuda_tests": part_cuda_tests, "sync_debug": part_sync_debug, "timing": part_timing,
                  "train": part_train, "bf16": part_bf16, "evaluation": part_evaluation,
                  "memory_budget": part_memory_budget}


if __name__ == "__main__":
    raise SystemExit(main())
