"""The towers' unit normalisation against ``F.normalize`` and its autograd gradient (float64)."""
import torch
import torch.nn.functional as F

from cbns.model.unit_norm import unit_rows


def test_values_and_gradients_equal_f_normalize_including_a_zero_row():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    x[3] = 0.0                                      # too short to normalise: divided by eps
    x[5] *= 1e-13                                   # below eps too
    upstream = torch.randn(7, 5, generator=g, dtype=torch.float64)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = unit_rows(a), F.normalize(b, dim=-1)
    assert torch.allclose(got, want, rtol=1e-12, atol=0)
    (got * upstream).sum().backward()
    (want * upstream).sum().backward()
    assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(unit_rows, (x,))
