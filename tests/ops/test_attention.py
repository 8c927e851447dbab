"""relation_attention (the compiled inference pass) against RelationAttention's torch version on
random graphs: head counts, edge features or none, targets without edges, no edges at all, edges
unsorted and repeated, logits large enough to overflow without the softmax's shift; and the
errors it raises instead of reading past its arrays or dropping a gradient."""

from __future__ import annotations

import pytest
import torch

from gnnalloc.nn import RelationAttention
from gnnalloc.ops import relation_attention

HIDDEN = 16


def make_relation(heads: int, edge_dim: int | None, dtype: torch.dtype, seed: int = 0) -> RelationAttention:
    torch.manual_seed(seed)
    relation = RelationAttention(HIDDEN, heads, edge_dim).to(dtype)
    with torch.no_grad():
        relation.bias.normal_()  # initialised to zero: a dropped bias would go unnoticed
    return relation


def random_graph(num_src: int, num_dst: int, num_edges: int, edge_dim: int | None, dtype: torch.dtype, seed: int = 1):
    """Features and edges in no particular order, with repeated edges, and the last two targets
    without any edge."""
    g = torch.Generator().manual_seed(seed)
    x_src = torch.randn(num_src, HIDDEN, generator=g, dtype=dtype)
    x_dst = torch.randn(num_dst, HIDDEN, generator=g, dtype=dtype)
    edge_index = torch.zeros(2, 0, dtype=torch.long)
    if num_edges:
        src = torch.randint(0, num_src, (num_edges,), generator=g)
        dst = torch.randint(0, num_dst - 2, (num_edges,), generator=g)
        edge_index = torch.stack([src, dst])
        edge_index = torch.cat([edge_index, edge_index[:, : num_edges // 4]], dim=1)  # repeats
    edge_attr = None
    if edge_dim:
        edge_attr = torch.randn(edge_index.shape[1], edge_dim, generator=g, dtype=dtype)
    return x_src, x_dst, edge_index, edge_attr


def torch_version(relation: RelationAttention, x_src, x_dst, edge_index, edge_attr) -> torch.Tensor:
    """RelationAttention's torch version: with grad on (its parameters require grad), the module
    never takes the compiled path."""
    with torch.enable_grad():
        out = relation(x_src, x_dst, edge_index, edge_attr)
    assert out.requires_grad  # produced by the torch version (the compiled one has no history)
    return out.detach()


def compiled_version(relation: RelationAttention, x_src, x_dst, edge_index, edge_attr) -> torch.Tensor:
    """The same relation through :func:`relation_attention` directly."""
    with torch.no_grad():
        values = relation.lin_src(x_src).view(-1, relation.heads, relation.dim)
        edge_parts = (None, None, None)
        if relation.lin_edge is not None:
            edge_parts = (edge_attr, relation.lin_edge.weight, relation.att_edge[0])
        return relation_attention(
            values, relation.att_dst(x_dst), relation.att_src[0], edge_index, relation.bias,
            relation.negative_slope, *edge_parts,
        )


def assert_matches(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if actual.dtype == torch.float64:
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    else:
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("heads", [1, 2, 4, 16])
def test_equals_the_torch_version_on_random_graphs(heads, edge_dim, dtype):
    relation = make_relation(heads, edge_dim, dtype)
    inputs = random_graph(40, 30, 300, edge_dim, dtype)
    out = compiled_version(relation, *inputs)
    reference = torch_version(relation, *inputs)
    assert_matches(out, reference)
    assert out.shape == (30, HIDDEN) and not out.requires_grad
    # The last two targets have no edge: ELU(b), bit for bit as the torch version.
    assert torch.equal(out[-2:], reference[-2:])
    assert_matches(out[-2:], torch.nn.functional.elu(relation.bias.detach()).expand(2, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("edge_dim", [None, 2])
def test_large_logits_are_shifted_by_each_targets_largest(edge_dim, dtype):
    # Logits in the hundreds: exp overflows (float32 and float64) unless shifted by the maximum.
    relation = make_relation(2, edge_dim, dtype)
    x_src, x_dst, edge_index, edge_attr = random_graph(20, 10, 120, edge_dim, dtype, seed=2)
    x_src, x_dst = 1000 * x_src, 1000 * x_dst
    out = compiled_version(relation, x_src, x_dst, edge_index, edge_attr)
    assert torch.isfinite(out).all()
    assert_matches(out, torch_version(relation, x_src, x_dst, edge_index, edge_attr))


@pytest.mark.parametrize("edge_dim", [None, 3])
def test_no_edges_gives_elu_of_the_bias_everywhere(edge_dim):
    relation = make_relation(2, edge_dim, torch.float32)
    inputs = random_graph(5, 4, 0, edge_dim, torch.float32)
    if edge_dim:
        assert inputs[3].shape == (0, edge_dim)
    out = compiled_version(relation, *inputs)
    assert torch.equal(out, torch_version(relation, *inputs))
    torch.testing.assert_close(out, torch.nn.functional.elu(relation.bias.detach()).expand(4, -1))


def test_no_sources_and_no_targets():
    relation = make_relation(2, None, torch.float64)
    empty_src = random_graph(0, 3, 0, None, torch.float64)
    assert_matches(compiled_version(relation, *empty_src), torch_version(relation, *empty_src))
    no_targets = random_graph(3, 0, 0, None, torch.float64)
    assert compiled_version(relation, *no_targets).shape == (0, HIDDEN)


def test_edge_order_does_not_matter_beyond_rounding():
    relation = make_relation(4, 3, torch.float64)
    x_src, x_dst, edge_index, edge_attr = random_graph(30, 20, 200, 3, torch.float64)
    order = torch.argsort(edge_index[1], stable=True)  # grouped by target, as builders emit them
    grouped = compiled_version(relation, x_src, x_dst, edge_index[:, order], edge_attr[order])
    assert_matches(grouped, compiled_version(relation, x_src, x_dst, edge_index, edge_attr))


def test_edge_features_are_cast_to_the_values_dtype():
    relation = make_relation(2, 3, torch.float32)
    x_src, x_dst, edge_index, edge_attr = random_graph(10, 8, 50, 3, torch.float32)
    as_float64 = compiled_version(relation, x_src, x_dst, edge_index, edge_attr.double())
    assert torch.equal(as_float64, compiled_version(relation, x_src, x_dst, edge_index, edge_attr))


@pytest.mark.parametrize("row, value", [(0, 10), (0, -1), (1, 8), (1, -3)])
def test_an_index_out_of_range_raises(row, value):
    relation = make_relation(2, None, torch.float32)
    x_src, x_dst, edge_index, _ = random_graph(10, 8, 50, None, torch.float32)
    edge_index[row, 17] = value
    with pytest.raises(IndexError, match="out of range"):
        compiled_version(relation, x_src, x_dst, edge_index, None)


def test_it_refuses_what_it_cannot_compute():
    relation = make_relation(2, 3, torch.float32)
    x_src, x_dst, edge_index, edge_attr = random_graph(10, 8, 50, 3, torch.float32)
    with torch.no_grad():
        values = relation.lin_src(x_src).view(-1, 2, HIDDEN // 2)
        logit_dst = relation.att_dst(x_dst)
    att_src, bias, weight, att_edge = (p.detach() for p in (
        relation.att_src[0], relation.bias, relation.lin_edge.weight, relation.att_edge[0]))
    good = dict(values=values, logit_dst=logit_dst, att_src=att_src, edge_index=edge_index, bias=bias,
                edge_attr=edge_attr, edge_weight=weight, att_edge=att_edge)
    relation_attention(**good)  # accepted as it is
    bad = {
        "values": [values.half(), values[:, 0]],
        "logit_dst": [logit_dst[:, :1], logit_dst.double()],
        "att_src": [att_src[:1]],
        "edge_index": [edge_index.int(), edge_index[:1]],
        "bias": [bias[:-1]],
        # The relation's weight sets the feature width: an edge_attr of another width is named.
        "edge_attr": [edge_attr[:-1], edge_attr[:, 0], edge_attr[:, :2], None],
        "edge_weight": [weight[:, 0], weight[:-1]],
        "att_edge": [att_edge.t()],
    }
    for name, values_tried in bad.items():
        for value in values_tried:
            with pytest.raises(ValueError, match=f"^{name}: "):
                relation_attention(**{**good, name: value})
    # Autograd would need a history the kernel does not record.
    with torch.enable_grad(), pytest.raises(ValueError, match="^bias: requires grad"):
        relation_attention(**{**good, "bias": relation.bias})
    with torch.no_grad():  # without grad mode a parameter is just its values
        assert torch.equal(relation_attention(**{**good, "bias": relation.bias}), relation_attention(**good))


def test_load_relation_attention_runs_the_kernel_in_both_dtypes(monkeypatch):
    import gnnalloc.ops._attention as attention_module

    dtypes = []
    kernel = attention_module._attention

    def recording(values, *args):
        dtypes.append(values.dtype.name)
        return kernel(values, *args)

    monkeypatch.setattr(attention_module, "_attention", recording)
    attention_module.load_relation_attention.__wrapped__()  # past the once-per-process cache
    assert dtypes == ["float32", "float64"]
    assert len(kernel.signatures) >= 2
