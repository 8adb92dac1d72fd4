"""A signal at any moment ends in one line: during the imports (before anything is written) the
early handler exits at once; SIGTERM and SIGINT mid-training are in tests/runs/test_resume.py."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def caught_signals(pid: int) -> int:
    """The mask of signals process ``pid`` handles itself (``SigCgt`` in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return 0


def test_sigint_while_torch_imports_is_one_line_without_traceback(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "cbns", "train", "--out", str(tmp_path / "o")], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # Python handles SIGINT from its start; SIGTERM is handled once cbns installed its early
        # handler, the first thing it does, before the commands and torch are imported
        while not caught_signals(proc.pid) & (1 << (signal.SIGTERM - 1)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and out == ""
    assert err == "cbns: interrupted (SIGINT) before the command started\n"
    assert not (tmp_path / "o").exists()
