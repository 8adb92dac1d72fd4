"""host_to_device: the same values on the device; on the CPU no copy is made."""
import numpy as np
import torch

from cbns.ranking.host_copy import host_to_device


def test_on_the_cpu_the_tensor_shares_the_array():
    array = np.arange(6, dtype=np.int64)
    tensor = host_to_device(array, "cpu")
    array[0] = 42
    assert tensor.tolist() == [42, 1, 2, 3, 4, 5]


def test_a_strided_view_arrives_with_its_values():
    array = np.arange(12, dtype=np.int64).reshape(3, 4)[:, 1]
    assert host_to_device(array, torch.device("cpu")).tolist() == [1, 5, 9]
