"""benchmarks/gpu.py --device cpu --quick: the GPU script's smoke run, as CI makes it."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_script_quick_on_cpu_ends_with_its_json_line(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--device", "cpu", "--quick",
                          "--threads", "2", "--out", str(tmp_path / "budget")],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["train"]) == {"inbatch-fp32", "inbatch-bf16", "cbns-fp32", "cbns-bf16"}
    for run in result["train"].values():
        assert run["steps_per_s"] > 0 and run["examples_per_s"] > 0 and run["peak_memory"]["peak_rss_bytes"] > 0
    assert result["evaluation"]["evaluate_s"] > 0 and result["evaluation"]["floor_s"] > 0
    budget = result["memory_budget"]
    # the comparison it makes: CBNS at a smaller batch sees more negatives within the same budget
    assert budget["cbns"]["batch_size"] < budget["inbatch"]["batch_size"]
    assert budget["cbns"]["negatives"] > budget["inbatch"]["negatives"]
    assert budget["cbns"]["step_peak_mb"] <= budget["budget_mb"] and budget["inbatch"]["step_peak_mb"] <= budget["budget_mb"]
    assert 0 <= budget["cbns"]["test_hr20"] <= 1
