"""benchmarks/gpu_check.py --device cpu --quick: every part that runs without CUDA, each in its own
process and JSON file, as CI makes it; and a part that hangs is cut off and reported while the
others still run."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def test_quick_run_on_the_cpu_writes_one_json_per_part(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    parts = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(parts) == set(summary["parts"]) == {"cuda_tests", "sync_debug", "timing", "train", "bf16",
                                                   "evaluation", "memory_budget"}
    assert parts["cuda_tests"]["status"] == "skipped" and "needs CUDA" in parts["cuda_tests"]["reason"]
    for name, part in parts.items():
        assert part["status"] in ("ok", "skipped"), (name, part.get("error"), part.get("traceback"))
        assert part["device"] == "cpu"

    sync = parts["sync_debug"]["configs"]
    assert len(sync) == 22 and all("error" not in c and c["ops"] > 0 for c in sync.values()), sync
    # dense updates dispatch fewer ops than row-sparse ones, in every configuration that has both
    for name, entry in sync.items():
        if f"{name}-dense" in sync:
            assert sync[f"{name}-dense"]["ops"] < entry["ops"], name

    timing = parts["timing"]["configs"]
    assert set(timing) == {"cbns-fp32-sparse", "cbns-fp32-dense", "cbns-bf16", "inbatch-fp32"}
    for entry in timing.values():
        assert entry["ms_per_step"] > 0 and entry["trace"]["steps"] == 3 and entry["trace"]["aten_events_per_step"] > 0
    assert timing["cbns-fp32-dense"]["sparse_updates"] is False and timing["cbns-bf16"]["precision"] == "bf16"

    train = parts["train"]
    assert train["epoch_s"] > 0 and train["peak_memory"]["peak_rss_bytes"] > 0
    assert [e["part"] for e in train["evaluations"]][-1] == "test" and all(e["seconds"] >= 0 for e in train["evaluations"])
    assert 0 <= train["test"]["recall@20"] <= 1

    # float32 against the float64 reference: the reference is right (a wrong mask or split would
    # show at this size); bf16 within the rounding of 8-bit mantissas
    results = parts["bf16"]["results"]
    for side in ("joint", "split"):
        fp32, bf16 = results[f"{side}-float32"], results[f"{side}-bfloat16"]
        assert max(fp32["loss_rel_error"], fp32["grad_users_rel_error"], fp32["grad_items_rel_error"]) < 1e-5, fp32
        assert max(bf16["loss_rel_error"], bf16["grad_users_rel_error"], bf16["grad_items_rel_error"]) < 2e-2, bf16

    evaluation = parts["evaluation"]
    assert evaluation["evaluate_s"] > 0 and evaluation["floor_s"] > 0 and evaluation["users"] > 0

    budget = parts["memory_budget"]["result"]
    # the comparison it makes: CBNS at a smaller batch sees more negatives within the same budget
    assert budget["cbns"]["batch_size"] < budget["inbatch"]["batch_size"]
    assert budget["cbns"]["negatives"] > budget["inbatch"]["negatives"]
    assert budget["cbns"]["step_peak_mb"] <= budget["budget_mb"] and budget["inbatch"]["step_peak_mb"] <= budget["budget_mb"]


def test_a_part_past_its_limit_is_reported_and_the_next_part_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    argv = ["--out", str(tmp_path), "--device", "cpu", "--quick"]
    assert gpu_check.run_child("timing", argv, tmp_path, limit=1.0) == "error"
    cut = json.loads((tmp_path / "timing.json").read_text())
    assert cut["status"] == "error" and cut["error"] == "timed out after 1 s"
    assert gpu_check.run_child("bf16", argv, tmp_path, limit=300) == "ok"
    assert json.loads((tmp_path / "bf16.json").read_text())["status"] == "ok"
    # a failure inside a part is its JSON, not a traceback on the terminal
    assert gpu_check.run_child("bf16", [*argv, "--threads", "-3"], tmp_path, limit=300) == "error"
    failed = json.loads((tmp_path / "bf16.json").read_text())
    assert failed["status"] == "error" and failed["error"] and "traceback" in failed
