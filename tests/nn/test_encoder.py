"""HAN encoder: shapes, gradients reach every parameter, size-agnostic, batch = separate graphs."""

from __future__ import annotations

import re

import pytest
import torch

from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.graph import SCHEMA, build_graph, collate_graphs
from gnnalloc.nn import HANEncoder, HANLayer, RelationAttention, SemanticAttention, fast_inference
from gnnalloc.families.edge.problem import INSTANCE_FORMAT, Instance

HIDDEN = 32


def no_link_instance() -> Instance:
    """Three unlinked servers (so no migrate edges and no link edges)."""
    servers = [{"id": f"s{i}", "compute": 10.0 + i, "bandwidth": 5.0} for i in range(3)]
    users = [
        {"id": f"u{i}", "server": f"s{i % 3}", "compute_min": 1.0 + i, "bandwidth_min": 2.0}
        for i in range(7)
    ]
    return Instance.from_dict({"format": INSTANCE_FORMAT, "servers": servers, "users": users})


class EdgeEncoder(HANEncoder):
    """The generic encoder on the edge family's schema, returning (user, server) embeddings."""

    def forward(self, graph):
        out = super().forward(graph)
        return out["user"], out["server"]


def make_encoder(**kwargs) -> HANEncoder:
    torch.manual_seed(0)
    return EdgeEncoder(SCHEMA, hidden=HIDDEN, heads=4, layers=2, **kwargs)


def backward_all(encoder: HANEncoder, graph) -> dict[str, torch.Tensor | None]:
    encoder.zero_grad(set_to_none=True)
    user, server = encoder(graph)
    # Random projections: a plain sum of LayerNorm outputs has zero gradient by construction.
    g = torch.Generator().manual_seed(1)
    loss = (user * torch.randn(user.shape, generator=g)).sum()
    loss = loss + (server * torch.randn(server.shape, generator=g)).sum()
    loss.backward()
    return {name: p.grad for name, p in encoder.named_parameters()}


def test_shapes_and_finite():
    instance = random_instance(50, 6, 1.0, seed=0)
    user, server = make_encoder()(build_graph(instance))
    assert user.shape == (50, HIDDEN) and server.shape == (6, HIDDEN)
    assert user.dtype == torch.float32
    assert torch.isfinite(user).all() and torch.isfinite(server).all()


def test_every_parameter_gets_gradient():
    instance = random_instance(50, 6, 1.0, seed=0)
    graph = build_graph(instance)
    assert all(graph[e].edge_index.shape[1] > 0 for e in graph.edge_types)
    grads = backward_all(make_encoder(), graph)
    for name, grad in grads.items():
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        # rev_home: each user has exactly one home, so its attention softmax is constant 1.
        if "rev_home" not in name or "att" not in name:
            assert grad.abs().sum() > 0, name


def test_every_parameter_gets_gradient_without_links():
    instance = no_link_instance()
    graph = build_graph(instance)
    assert graph["server", "link", "server"].edge_index.shape == (2, 0)
    assert graph["user", "migrate", "user"].edge_index.shape == (2, 0)
    for name, grad in backward_all(make_encoder(), graph).items():
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name


def test_missing_edge_type_is_empty():
    graph = build_graph(no_link_instance())
    encoder = make_encoder().eval()
    expected = encoder(graph)
    del graph["user", "migrate", "user"]
    del graph["server", "link", "server"]
    for a, b in zip(encoder(graph), expected):
        torch.testing.assert_close(a, b)


def test_single_user():
    graph = build_graph(random_instance(1, 1, 1.0, seed=0))
    encoder = make_encoder()
    user, server = encoder(graph)
    assert user.shape == (1, HIDDEN) and server.shape == (1, HIDDEN)
    assert torch.isfinite(user).all()
    for name, grad in backward_all(encoder, graph).items():
        assert grad is not None and torch.isfinite(grad).all(), name


def test_size_agnostic_same_model():
    encoder = make_encoder().eval()
    with torch.no_grad():
        small_user, _ = encoder(build_graph(eua_instance(50, 1.0, seed=0)))
        large_user, large_server = encoder(build_graph(eua_instance(5000, 1.0, seed=0)))
    assert large_user.shape == (5000, HIDDEN) and large_server.shape == (125, HIDDEN)
    assert torch.isfinite(large_user).all()
    # Mean aggregation and LayerNorm keep embeddings on the same scale at both sizes.
    ratio = large_user.norm(dim=1).mean() / small_user.norm(dim=1).mean()
    assert 0.5 < ratio < 2.0


def test_batch_equals_separate_graphs():
    instances = [random_instance(n, s, 1.0, seed=n) for n, s in ((12, 3), (30, 5), (1, 1))]
    graphs = [build_graph(i) for i in instances]
    encoder = make_encoder().eval()
    batch_user, batch_server = encoder(collate_graphs(graphs))
    separate = [encoder(g) for g in graphs]
    users, servers = zip(*separate)
    torch.testing.assert_close(batch_user, torch.cat(users), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch_server, torch.cat(servers), atol=1e-5, rtol=1e-5)


def test_dropout_and_float64():
    graph = build_graph(random_instance(20, 4, 1.0, seed=3))
    encoder = make_encoder(dropout=0.3).train()
    user, _ = encoder(graph)
    assert torch.isfinite(user).all()
    encoder = make_encoder().double()
    user, server = encoder(graph)
    assert user.dtype == torch.float64 and server.dtype == torch.float64


def test_layers_validate_and_semantic_weights():
    with pytest.raises(ValueError):
        RelationAttention(30, 4)
    layer = SemanticAttention(HIDDEN)
    zs = torch.randn(3, 10, HIDDEN)
    batch = torch.tensor([0] * 4 + [1] * 6)
    out, beta = layer(zs, batch, 2)
    assert out.shape == (10, HIDDEN)
    torch.testing.assert_close(beta.sum(0), torch.ones(2))
    assert isinstance(make_encoder().layers[0], HANLayer)


def test_restricted_outputs_equal_the_full_pass_and_skip_the_last_layers_user_relations():
    torch.manual_seed(0)
    encoder = HANEncoder(SCHEMA, hidden=HIDDEN, heads=4, layers=2)
    graph = build_graph(random_instance(60, 6, 1.2, seed=3))
    full = encoder(graph)
    evaluated = []
    for index, layer in enumerate(encoder.layers):
        for key, relation in layer.relations.items():
            relation.register_forward_hook(lambda *_, at=(index, key): evaluated.append(at))
    servers_only = encoder(graph, outputs=("server",))
    assert set(servers_only) == {"server"}
    assert torch.equal(servers_only["server"], full["server"])
    # The first layer updates users too (the last layer's servers read them); the last layer
    # evaluates only the relations into servers.
    assert sorted(key for index, key in evaluated if index == 0) == sorted(encoder.layers[0].relations)
    into_servers = [key for key in encoder.layers[1].relations if key.endswith("__server")]
    assert sorted(key for index, key in evaluated if index == 1) == sorted(into_servers)


def test_restricted_outputs_without_layers_and_unknown_types():
    encoder = HANEncoder(SCHEMA, hidden=HIDDEN, heads=4, layers=0)
    graph = build_graph(random_instance(20, 3, 1.0, seed=1))
    assert set(encoder(graph, outputs=["user"])) == {"user"}
    assert set(encoder(graph, outputs="server")) == {"server"}
    for bad in (("server", "cell"), ()):
        with pytest.raises(ValueError, match="outputs: must name node types"):
            encoder(graph, outputs=bad)


@pytest.mark.parametrize("hidden, heads, field", [(8, 0, "heads"), (0, 2, "hidden"), (9, 2, "hidden")])
def test_the_encoder_names_a_bad_width_or_head_count(hidden, heads, field):
    """``heads = 0`` divided by zero (a checkpoint's hyperparameters reach here)."""
    from gnnalloc.core import InputError

    with pytest.raises(InputError, match=f"^{field}: "):
        HANEncoder(SCHEMA, hidden=hidden, heads=heads, layers=1)


# The inference paths (fast_inference): the compiled relation attention and the semantic
# attention's one score per relation without edges, against the torch version.


@pytest.fixture
def kernel_calls(monkeypatch):
    """Every call of the compiled relation attention the encoder makes."""
    import gnnalloc.nn.encoder as encoder_module

    calls = []
    compiled = encoder_module.relation_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return compiled(*args, **kwargs)

    monkeypatch.setattr(encoder_module, "relation_attention", counting)
    return calls


@pytest.fixture
def shared_scores(monkeypatch):
    """The relations SemanticAttention scores from one row, one list per call."""
    calls = []
    scored = SemanticAttention._score_shared

    def counting(self, zs, shared):
        calls.append(list(shared))
        return scored(self, zs, shared)

    monkeypatch.setattr(SemanticAttention, "_score_shared", counting)
    return calls


def random_biases(encoder: HANEncoder, seed: int = 5) -> HANEncoder:
    """Relation biases start at zero; random ones make a dropped or misplaced bias visible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, RelationAttention):
                module.bias.copy_(torch.randn(module.bias.shape, generator=g))
    return encoder


def both_ways(encoder: HANEncoder, graph, **kwargs) -> tuple[dict, dict]:
    with torch.no_grad():
        with fast_inference(False):
            reference = encoder(graph, **kwargs)
        return encoder(graph, **kwargs), reference


def assert_same_embeddings(fast: dict, reference: dict) -> None:
    assert fast.keys() == reference.keys()
    for t in fast:
        if fast[t].dtype == torch.float64:
            torch.testing.assert_close(fast[t], reference[t], rtol=1e-12, atol=1e-12)
        else:
            torch.testing.assert_close(fast[t], reference[t])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_fast_inference_equals_the_torch_version(heads, dtype, kernel_calls, shared_scores):
    torch.manual_seed(0)
    encoder = random_biases(HANEncoder(SCHEMA, hidden=HIDDEN, heads=heads, layers=2)).to(dtype).eval()
    graphs = [build_graph(random_instance(60, 6, 1.2, seed=3)), build_graph(no_link_instance())]
    batch = collate_graphs(graphs)
    for graph in (*graphs, batch):
        fast, reference = both_ways(encoder, graph)
        assert_same_embeddings(fast, reference)
    assert len(kernel_calls) > 0
    # Only the link-free graph lacks edges of a relation: migrate (the users' fourth relation) and
    # link (the servers' third), scored once in each of the two layers; the batch has both.
    assert sorted(shared_scores) == [[2], [2], [3], [3]]


def test_fast_inference_with_restricted_outputs(kernel_calls):
    torch.manual_seed(1)
    encoder = random_biases(HANEncoder(SCHEMA, hidden=HIDDEN, heads=2, layers=2)).eval()
    graph = build_graph(eua_instance(300, 1.0, seed=2))
    fast, reference = both_ways(encoder, graph, outputs=("server",))
    assert_same_embeddings(fast, reference)
    # The kernel serves every relation with edges in layer 0, and the three into servers (all
    # with edges here) in layer 1.
    into_servers = [e for e in SCHEMA.edge_types if e[2] == "server"]
    assert len(into_servers) == 3 and all(graph[e].edge_index.shape[1] > 0 for e in into_servers)
    assert len(kernel_calls) == sum(graph[e].edge_index.shape[1] > 0 for e in SCHEMA.edge_types) + 3


def test_the_shipped_price_model_predicts_the_same_prices_both_ways(kernel_calls, shared_scores):
    import numpy as np

    from gnnalloc.families.edge import shipped_allocator
    from gnnalloc.families.edge.nn.prices import price_references

    model = shipped_allocator().eval()
    instance = eua_instance(200, 1.0, 3)
    with fast_inference(False):
        reference = model.predict(instance)
    assert not kernel_calls and not shared_scores
    predicted = model.predict(instance)
    assert kernel_calls and shared_scores  # the shipped model builds no metapath edges
    for fast, slow in zip(predicted, reference):
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=0)  # float32 log-prices, exponentiated
    graph, problem = model.prepare([instance])
    references = price_references(problem)
    with torch.no_grad():
        logs = model(graph, problem, references)
        with fast_inference(False):
            logs_reference = model(graph, problem, references)
    for fast, slow in zip(logs, logs_reference):
        torch.testing.assert_close(fast, slow)


def test_training_and_autograd_take_the_torch_version(kernel_calls, shared_scores):
    graph = build_graph(random_instance(50, 6, 1.0, seed=0))
    assert all(graph[e].edge_index.shape[1] > 0 for e in graph.edge_types)
    encoder = random_biases(make_encoder(dropout=0.2)).train()
    grads = backward_all(encoder, graph)
    assert not kernel_calls
    relation_grads = [grad for name, grad in grads.items() if ".relations." in name and "rev_home" not in name]
    assert relation_grads and all(grad is not None and grad.abs().sum() > 0 for grad in relation_grads)
    # Relations without edges: scored per node when training.
    backward_all(encoder, build_graph(no_link_instance()))
    assert not kernel_calls and not shared_scores
    # Evaluation with grad on: the parameters require grad, so the output needs a history.
    encoder.eval()
    user, _ = encoder(graph)
    assert user.requires_grad and not kernel_calls
    # Training mode without grad: dropout still applies, which only the torch version does.
    with torch.no_grad():
        encoder.train()(graph)
    assert not kernel_calls
    # Without grad and with dropout inactive, both shortcuts serve.
    with torch.no_grad():
        encoder.eval()(build_graph(no_link_instance()))
    assert kernel_calls and shared_scores


def test_frozen_parameters_and_inputs_without_grad_take_the_fast_paths(kernel_calls):
    encoder = make_encoder().eval().requires_grad_(False)
    user, _ = encoder(build_graph(random_instance(20, 3, 1.0, seed=1)))
    assert kernel_calls and not user.requires_grad


def test_semantic_attention_scores_shared_relations_once():
    torch.manual_seed(0)
    layer = SemanticAttention(HIDDEN)
    zs = torch.randn(4, 10, HIDDEN)
    zs[1] = torch.randn(HIDDEN)  # the same row for every node, as a relation without edges
    zs[3] = torch.randn(HIDDEN)
    batch = torch.tensor([0] * 4 + [2] * 6)  # graph 1 has no node of this type
    for shared in ([1, 3], [3, 1, 3], [1]):
        out, beta = layer(zs, batch, 3, shared)
        expected_out, expected_beta = layer(zs, batch, 3)
        torch.testing.assert_close(out, expected_out)
        torch.testing.assert_close(beta, expected_beta)
    zs[0], zs[2] = torch.randn(HIDDEN), torch.randn(HIDDEN)
    torch.testing.assert_close(layer(zs, batch, 3, range(4)), layer(zs, batch, 3))
    empty = torch.zeros(4, 0, HIDDEN)
    out, beta = layer(empty, torch.zeros(0, dtype=torch.long), 1, [1])
    assert out.shape == (0, HIDDEN) and beta.shape == (4, 1)


def test_semantic_attention_names_a_bad_shared_index():
    layer = SemanticAttention(HIDDEN)
    zs = torch.randn(3, 5, HIDDEN)
    for shared in ([3], [-1], [0, 7]):
        with pytest.raises(ValueError, match="^shared: "):
            layer(zs, torch.zeros(5, dtype=torch.long), 1, shared)


def test_autocast_and_tracing_take_the_torch_version(kernel_calls, shared_scores):
    import gnnalloc.nn.encoder as encoder_module

    encoder = random_biases(make_encoder()).eval()
    graph = build_graph(no_link_instance())
    # Autocast would hand the compiled path the linear maps' outputs in bfloat16, which it refuses;
    # the torch version runs in mixed precision, close to float32.
    with torch.no_grad():
        assert encoder_module._inference(encoder, [])
        reference = encoder(build_graph(random_instance(30, 4, 1.0, seed=1)))
        kernel_calls.clear()
        shared_scores.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not encoder_module._inference(encoder, [])
            mixed = encoder(build_graph(random_instance(30, 4, 1.0, seed=1)))
    assert not kernel_calls and not shared_scores
    for low, full in zip(mixed, reference, strict=True):
        torch.testing.assert_close(low.float(), full, rtol=0.0, atol=0.1)
    # A trace would replay the shortcut taken for this graph's empty relations on other graphs.
    layer = encoder.layers[0].requires_grad_(False)  # traced as constants
    x = {t: torch.randn(graph[t].x.shape[0], HIDDEN) for t in ("user", "server")}
    edges = {e: graph[e].edge_index if e in graph.edge_types else torch.zeros(2, 0, dtype=torch.long)
             for e in SCHEMA.edge_types}
    attrs = {e: graph[e].edge_attr for e in SCHEMA.edge_dims if e in graph.edge_types}
    batch = {t: torch.zeros(x[t].shape[0], dtype=torch.long) for t in x}
    with torch.no_grad():
        torch.jit.trace(lambda u, s: tuple(layer({"user": u, "server": s}, edges, attrs, batch, 1).values()),
                        (x["user"], x["server"]), check_trace=False)
    assert not kernel_calls and not shared_scores


def test_forward_mode_ad_and_torch_func_take_the_torch_version(kernel_calls):
    """The compiled path carries no tangents and reads only stored tensors: dual inputs (also
    under no grad, where it would drop the tangent silently), a dual edge_attr alone, and
    torch.func's jvp (over inputs or, through functional_call, parameters) and vmap all get the
    torch version's results."""
    import torch.autograd.forward_ad as fwAD
    from torch.func import functional_call, jvp, vmap

    torch.manual_seed(0)
    attention = RelationAttention(HIDDEN, 4, edge_dim=3).eval().requires_grad_(False)
    with torch.no_grad():
        attention.bias.copy_(torch.randn(HIDDEN))
    g = torch.Generator().manual_seed(3)
    x_src, x_dst, direction = (torch.randn(n, HIDDEN, generator=g) for n in (5, 4, 5))
    edges = torch.tensor([[0, 1, 2, 3, 4, 0], [0, 0, 1, 2, 3, 3]])
    edge_attr, edge_direction = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    params = dict(attention.named_parameters())
    param_directions = {name: torch.randn(p.shape, generator=g) for name, p in params.items()}

    def attend(x, attr=edge_attr):
        return attention(x, x_dst, edges, attr)

    def cases():
        with fwAD.dual_level():
            yield fwAD.unpack_dual(attend(fwAD.make_dual(x_src, direction))).tangent
            yield fwAD.unpack_dual(attend(x_src, fwAD.make_dual(edge_attr, edge_direction))).tangent
        yield jvp(attend, (x_src,), (direction,))[1]
        yield jvp(lambda p: functional_call(attention, p, (x_src, x_dst, edges, edge_attr)),
                  (params,), (param_directions,))[1]
        yield vmap(attend)(torch.stack([x_src, direction]))

    with torch.no_grad():
        with fast_inference(False):
            expected = list(cases())
        assert attend(x_src) is not None and kernel_calls  # the compiled path serves plain inputs
        kernel_calls.clear()
        for got, want in zip(cases(), expected, strict=True):
            assert got is not None
            torch.testing.assert_close(got, want)
    assert not kernel_calls


def test_jvp_through_the_encoder_matches_the_torch_version(kernel_calls, shared_scores):
    """Inside torch.func.jvp every tensor is a transform's wrapper, including the inputs of
    relations no tangent reaches: every relation takes the torch version."""
    from torch.func import jvp

    encoder = random_biases(make_encoder()).eval().requires_grad_(False)
    graph = collate_graphs([build_graph(random_instance(20, 3, 1.0, seed=1)), build_graph(no_link_instance())])
    users = graph["user"].x
    direction = torch.randn(users.shape, generator=torch.Generator().manual_seed(4))

    def embed(x):
        graph["user"].x = x
        return encoder(graph)

    with torch.no_grad():
        with fast_inference(False):
            expected = jvp(embed, (users,), (direction,))[1]
        got = jvp(embed, (users,), (direction,))[1]
    assert not kernel_calls and not shared_scores
    for fast, slow in zip(got, expected, strict=True):
        torch.testing.assert_close(fast, slow)


def test_a_relation_names_missing_or_misshapen_edge_features_on_both_versions():
    torch.manual_seed(0)
    attention = RelationAttention(HIDDEN, 4, edge_dim=3)
    x_src, x_dst = torch.randn(5, HIDDEN), torch.randn(4, HIDDEN)
    for edges in (torch.tensor([[0, 1, 2], [0, 0, 3]]), torch.zeros(2, 0, dtype=torch.long)):
        num_edges = edges.shape[1]
        for fast, grad in ((True, False), (False, False), (True, True)):
            with torch.set_grad_enabled(grad), fast_inference(fast):
                for bad in (None, torch.randn(num_edges, 2), torch.randn(num_edges + 1, 3), torch.randn(3)):
                    with pytest.raises(ValueError, match="^edge_attr: "):
                        attention(x_src, x_dst, edges, bad)
                assert attention(x_src, x_dst, edges, torch.randn(num_edges, 3)).shape == (4, HIDDEN)
    # A relation without edge features ignores any given.
    plain = RelationAttention(HIDDEN, 4)
    edges = torch.tensor([[0, 1], [1, 2]])
    with torch.no_grad():
        torch.testing.assert_close(plain(x_src, x_dst, edges, torch.randn(7)), plain(x_src, x_dst, edges))


def test_the_encoder_names_the_relation_of_a_misshapen_edge_attr():
    encoder = make_encoder().eval()
    graph = build_graph(random_instance(20, 3, 1.0, seed=1))
    relation = next(e for e in SCHEMA.edge_dims if e in graph.edge_types and graph[e].edge_attr.shape[0])
    graph[relation].edge_attr = graph[relation].edge_attr[:, :-1]
    for fast in (True, False):
        with torch.no_grad(), fast_inference(fast):
            with pytest.raises(ValueError, match=rf"^edge_attr: .*\(relation {re.escape(str(relation))}\)$"):
                encoder(graph)


def test_fast_inference_is_per_thread(kernel_calls):
    import threading

    encoder = make_encoder().eval()
    graph = build_graph(random_instance(20, 3, 1.0, seed=1))
    other_thread_calls = []

    def other() -> None:
        before = len(kernel_calls)
        with torch.no_grad():
            encoder(graph)
        other_thread_calls.append(len(kernel_calls) - before)

    with fast_inference(False):
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        before = len(kernel_calls)
        with torch.no_grad():
            encoder(graph)
        assert len(kernel_calls) == before  # switched off here
    assert other_thread_calls[0] > 0  # and not in the other thread


def test_the_edge_family_warm_up_loads_the_attention_kernel(monkeypatch):
    import gnnalloc.families.edge._family as family_module

    loaded = []
    monkeypatch.setattr(family_module, "load_dual_kernels", lambda: None)
    monkeypatch.setattr(family_module, "load_relation_attention", lambda: loaded.append(True))
    family_module.FAMILY.warm_up()
    assert loaded == [True]


@pytest.mark.parametrize("dropout", [1.0, 1.5, -0.1, float("nan"), True, "0.1"])
def test_a_bad_dropout_is_named_when_the_encoder_is_built(dropout):
    """Every family's model builds this encoder: a bad dropout is named there, not by torch at
    the first training step (after a run has labelled its data)."""
    from gnnalloc.core import InputError

    with pytest.raises(InputError, match="^dropout: must be a number in"):
        make_encoder(dropout=dropout)
    with pytest.raises(InputError, match="^dropout: must be a number in"):
        RelationAttention(8, 2, dropout=dropout)
