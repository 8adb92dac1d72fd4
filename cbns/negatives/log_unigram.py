"""The unigram item distribution of the training stream, as log q."""
from __future__ import annotations

import numpy as np
import torch


def log_unigram(counts: np.ndarray) -> torch.Tensor:
    """``[I]`` log q(i) = log(count(i) / total); items never seen in train get count 1, so that
    a uniformly drawn unseen item still has a finite correction."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)
