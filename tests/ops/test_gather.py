"""gather_weighted_sum: the CSR path (no autograd, edges grouped by target, large enough) against
the gather-and-add path and a plain loop, gradients, empty inputs."""

import pytest
import torch

import gnnalloc.ops._gather as gather_module
from gnnalloc.ops import gather_weighted_sum


@pytest.fixture
def csr_built(monkeypatch):
    """The CSR matrices built (one per head each time the CSR path runs)."""
    built = []
    make = torch.sparse_csr_tensor

    def counting(*args, **kwargs):
        built.append(args)
        return make(*args, **kwargs)

    monkeypatch.setattr(gather_module.torch, "sparse_csr_tensor", counting)
    return built


@pytest.fixture
def csr_products(csr_built, monkeypatch):
    """:func:`csr_built` with the size threshold lowered so that small inputs take the path."""
    monkeypatch.setattr(gather_module, "_CSR_MIN_ENTRIES", 0)
    return csr_built


def edges(num_src: int, num_dst: int, count: int, grouped: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_src, (count,), generator=g)
    dst = torch.randint(0, num_dst - 1, (count,), generator=g)  # the last target gets no edge
    if grouped:
        dst, order = torch.sort(dst, stable=True)
        src = src[order]
    return src, dst


def loop(weight, values, src, dst, num_dst):
    out = torch.zeros(num_dst, *values.shape[1:], dtype=values.dtype)
    for e in range(src.shape[0]):
        out[dst[e]] += weight[e].unsqueeze(-1) * values[src[e]]
    return out


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_a_loop_with_and_without_grouped_targets(csr_products, grouped, dtype):
    src, dst = edges(40, 25, 300, grouped)
    g = torch.Generator().manual_seed(1)
    weight = torch.rand(300, 3, generator=g, dtype=dtype)
    values = torch.randn(40, 3, 4, generator=g, dtype=dtype)
    with torch.no_grad():
        out = gather_weighted_sum(weight, values, src, dst, 25)
    assert len(csr_products) == (3 if grouped else 0)  # one CSR matrix per head
    assert out.shape == (25, 3, 4) and out.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(out, loop(weight, values, src, dst, 25), atol=tolerance)
    assert torch.equal(out[-1], torch.zeros(3, 4, dtype=dtype))


def test_the_csr_path_equals_the_gather_path(csr_built):
    src, dst = edges(5000, 2000, 20000, grouped=True)  # 20,000 x 2 x 16 entries: above the threshold
    g = torch.Generator().manual_seed(2)
    weight, values = torch.rand(20000, 2, generator=g), torch.randn(5000, 2, 16, generator=g)
    with torch.no_grad():
        fast = gather_weighted_sum(weight, values, src, dst, 2000)
    assert len(csr_built) == 2  # the default threshold sends this size to the CSR path
    tracked = gather_weighted_sum(weight.requires_grad_(True), values, src, dst, 2000)  # gather path
    assert len(csr_built) == 2
    # Bit-identical where torch's CPU CSR kernel adds each row in order (seen on AMD EPYC); MKL's
    # on Intel Xeon vectorises the row sums, rounding 45 % of entries differently here (at most
    # 2e-7 relative, float32).
    assert torch.allclose(fast, tracked.detach(), rtol=1e-6, atol=1e-6)


def test_indices_out_of_range_raise_instead_of_reading_past_the_rows(csr_products):
    src, dst = edges(10, 6, 40, grouped=True)
    weight, values = torch.rand(40, 2), torch.randn(10, 2, 3)
    bad_src = src.clone()
    bad_src[3] = 10
    with torch.no_grad():
        for arguments in ((bad_src, dst, 6), (src, dst, int(dst.max()))):  # a source, a target
            with pytest.raises((IndexError, RuntimeError)):
                gather_weighted_sum(weight, values, *arguments)
    assert csr_products == []


def test_small_sums_and_autograd_take_the_gather_path(csr_products, monkeypatch):
    src, dst = edges(10, 6, 40, grouped=True)
    weight = torch.rand(40, 2, dtype=torch.float64, requires_grad=True)
    values = torch.randn(10, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, v: gather_weighted_sum(w, v, src, dst, 6), (weight, values))
    monkeypatch.setattr(gather_module, "_CSR_MIN_ENTRIES", 40 * 2 * 3 + 1)
    with torch.no_grad():
        gather_weighted_sum(weight, values, src, dst, 6)
    assert csr_products == []


def test_reduced_precision_and_mixed_dtypes_take_the_gather_path(csr_products):
    src, dst = edges(10, 6, 40, grouped=True)
    g = torch.Generator().manual_seed(3)
    weight, values = torch.rand(40, 2, generator=g), torch.randn(10, 2, 3, generator=g)
    reference = loop(weight, values, src, dst, 6)
    with torch.no_grad():
        mixed = gather_weighted_sum(weight, values.to(torch.bfloat16), src, dst, 6)
        half = gather_weighted_sum(weight.to(torch.bfloat16), values.to(torch.bfloat16), src, dst, 6)
    assert csr_products == []
    assert mixed.dtype == half.dtype == torch.bfloat16
    for out in (mixed, half):
        assert torch.allclose(out.float(), reference, rtol=0.05, atol=0.05)


def test_no_edges_give_zeros(csr_products):
    empty = torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        out = gather_weighted_sum(torch.zeros(0, 2), torch.randn(5, 2, 3), empty, empty, 4)
    assert torch.equal(out, torch.zeros(4, 2, 3))
