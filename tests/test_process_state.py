"""The library leaves the process as it found it: ``threads`` is applied by the command line only,
and signal handlers are installed only by the command line or by an explicit ``graceful_stop``."""
import os
import signal

import pytest
import torch
from conftest import write_tiny_lightgcn

from cbns.api import evaluate_run, resume, train
from cbns.config import TrainConfig
from cbns.errors import Interrupted
from cbns.training.callbacks.base import Callback
from cbns.training.stop_request import graceful_stop


class Crash(Callback):
    class Boom(Exception):
        pass

    def on_step_end(self, trainer):
        if trainer.global_step == 2:
            raise Crash.Boom()


def _marker(signum, frame):  # a handler of the caller's own, to see that it survives
    pass


@pytest.fixture
def process_state():
    """The caller's settings during the test: 3 torch threads (not what the runs ask for) and its
    own SIGINT/SIGTERM handlers; put back afterwards."""
    threads, handlers = torch.get_num_threads(), {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    torch.set_num_threads(3)
    signal.signal(signal.SIGINT, _marker)
    signal.signal(signal.SIGTERM, _marker)
    before = (torch.get_num_threads(), torch.get_num_interop_threads(), _environ())
    yield before
    torch.set_num_threads(threads)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _environ() -> dict:
    # torch records its compiler cache folder on first use (TORCHINDUCTOR_CACHE_DIR) and pytest the
    # phase of the test (PYTEST_CURRENT_TEST): neither is cbns's
    return {k: v for k, v in os.environ.items() if not k.startswith(("TORCHINDUCTOR_", "PYTEST_"))}


def _unchanged(before):
    assert (torch.get_num_threads(), torch.get_num_interop_threads(), _environ()) == before
    assert signal.getsignal(signal.SIGINT) is _marker and signal.getsignal(signal.SIGTERM) is _marker


def _data(root):
    write_tiny_lightgcn(root, seed=5)
    return TrainConfig(data=str(root), sampler="cbns", memory_size=64, dim=4, batch_size=8, epochs=1, threads=1,
                       checkpoint_every=1)


def test_train_resume_and_evaluate_leave_threads_env_and_handlers_alone(tmp_path, process_state):
    config = _data(tmp_path)
    with pytest.raises(Crash.Boom):
        train(config, tmp_path / "run", progress=False, verbose=False, callbacks=[Crash()])
    _unchanged(process_state)
    resume(tmp_path / "run", progress=False, verbose=False, threads=1)
    _unchanged(process_state)
    evaluate_run(tmp_path / "run", device="cpu")
    _unchanged(process_state)
    train(config, progress=False, verbose=False)  # no run directory
    _unchanged(process_state)


class SignalAt(Callback):
    def on_step_end(self, trainer):
        if trainer.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)


def test_graceful_stop_is_opt_in_and_puts_the_handlers_back(tmp_path, process_state):
    config = _data(tmp_path)
    with pytest.raises(Interrupted) as caught, graceful_stop():
        train(config, tmp_path / "run", progress=False, verbose=False, callbacks=[SignalAt()])
    assert caught.value.signum == signal.SIGTERM and "step 2" in caught.value.detail
    assert (tmp_path / "run" / "config.yaml").is_file() and not (tmp_path / "run" / "metrics.json").exists()
    _unchanged(process_state)
    resume(tmp_path / "run", progress=False, verbose=False)
    assert (tmp_path / "run" / "metrics.json").is_file()
    _unchanged(process_state)
