"""segment_softmax against torch_geometric.utils.softmax (the reference it replaces)."""

import pytest
import torch
from torch_geometric.utils import softmax as pyg_softmax

from gnnalloc.ops._softmax import segment_softmax


@pytest.mark.parametrize("heads", [None, 1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_pyg_softmax_and_its_gradient(heads, dtype):
    g = torch.Generator().manual_seed(0)
    num, edges = 30, 200
    index = torch.randint(0, num, (edges,), generator=g)  # some segments stay empty
    shape = (edges,) if heads is None else (edges, heads)
    logit = (10 * torch.randn(shape, generator=g)).to(dtype).requires_grad_(True)
    ours = segment_softmax(logit, index, num)
    reference = pyg_softmax(logit, index, num_nodes=num)
    assert torch.equal(ours, reference)
    weights = torch.randn(shape, generator=g).to(dtype)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), logit)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), logit)
    assert torch.allclose(grad_ours, grad_reference, rtol=1e-6 if dtype == torch.float32 else 1e-12)


def test_sums_to_one_per_segment_and_handles_no_entries():
    index = torch.tensor([0, 0, 2, 2, 2])
    out = segment_softmax(torch.tensor([1.0, 2.0, -1e4, 0.0, 3.0]), index, 4)
    totals = torch.zeros(4).index_add(0, index, out)
    assert torch.allclose(totals, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert segment_softmax(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 3).shape == (0, 4)


def test_segment_sum_bins_the_last_dimension():
    from gnnalloc.ops import segment_sum

    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    index = torch.tensor([2, 0, 2])
    assert segment_sum(values, index, 4).tolist() == [[2.0, 0.0, 4.0, 0.0], [5.0, 0.0, 10.0, 0.0]]


def test_segment_mean_averages_the_last_dimension_and_leaves_empty_segments_at_zero():
    from gnnalloc.ops import segment_mean

    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    index = torch.tensor([2, 0, 2])
    assert segment_mean(values, index, 4).tolist() == [[2.0, 0.0, 2.0, 0.0], [5.0, 0.0, 5.0, 0.0]]
