"""A run directory is written by one run at a time: a second cbns train on it is refused in one
line while the first holds it, and the lock goes with its process, however that process ends."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cbns.cli import main
from cbns.errors import CbnsError
from cbns.runs.run_lock import LOCK_FILE, RunLock

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def wait_for_holder(path: Path, proc, timeout: float = 120.0) -> str:
    """Poll the lock file until a process has written its pid into it (it does so once it holds it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the first run ended (rc {proc.returncode}) before the second started"
        text = path.read_text() if path.is_file() else ""
        if text.startswith("pid "):
            return text.strip()
        time.sleep(0.01)
    raise AssertionError("the first run never took the lock")


def test_a_second_train_on_a_directory_being_written_is_refused(tmp_path, gowalla_slice):
    out = tmp_path / "same"
    args = [sys.executable, "-m", "cbns", "train", "--data", str(gowalla_slice), "--epochs", "2", "--dim", "8",
            "--threads", "1", "--no-progress", "--out", str(out)]
    first = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        holder = wait_for_holder(out / LOCK_FILE, first)
        second = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run must still be writing"
        assert second.returncode == 2
        assert second.stderr == (f"cbns: error: --out {out}: another cbns run ({holder}) is writing this directory; "
                                 f"wait for it to end, or choose another --out\n")
        assert holder == f"pid {first.pid}"
        assert first.wait(timeout=600) == 0 and (out / "metrics.json").is_file()  # the first run is untouched
    finally:
        if first.poll() is None:
            first.kill()


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from cbns.runs.run_lock import RunLock; "
                               "RunLock(sys.argv[1]).__enter__(); print('locked', flush=True); sys.stdin.read()",
                               str(out)], cwd=REPO, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(CbnsError, match=rf"option out={out}: another cbns run \(pid {holder.pid}\)"), RunLock(out):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    with RunLock(out):  # the kernel dropped the lock with its process
        assert (out / LOCK_FILE).is_file()


def test_resume_takes_the_lock_too(capsys, tmp_path):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "config.yaml").write_text("epochs: 1\n")
    with RunLock(out):
        code = main(["train", "--resume", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"cbns: error: --resume {out}: another cbns run (pid {os.getpid()})")
