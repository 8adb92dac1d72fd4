"""CpuClock: an epoch's CPU seconds cover its steps and leave out the validation after them."""
import time

import pytest

from cbns.training.callbacks.cpu_clock import CpuClock


def burn(seconds):
    """Spend ``seconds`` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_seconds_cover_the_steps_and_not_the_validation():
    clock, first, second = CpuClock(), {}, {}
    clock.on_fit_start(None)
    for _ in range(2):
        burn(0.15)
        clock.on_step_end(None)
    burn(0.4)  # validation: after the last step, before the epoch ends
    clock.on_epoch_end(None, first)
    burn(0.1)
    clock.on_step_end(None)
    clock.on_epoch_end(None, second)
    assert 0.3 <= first["cpu_seconds"] < 0.3 + 0.1
    assert second["cpu_seconds"] == pytest.approx(0.1, abs=0.05)  # the earlier validation is not carried over
