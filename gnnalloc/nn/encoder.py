r"""HAN-style encoder of the instance graph (Wang et al., "Heterogeneous Graph Attention Network",
WWW 2019), extended with edge features and residual blocks.

The graph's schema is an argument (:class:`GraphSchema`: node types with their input widths,
relations with their edge-feature widths), as :class:`torch_geometric.nn.HANConv` takes
``metadata``; every family describes its graphs with one. Each layer updates every node type ``t``
from each relation ``r = (t', name, t)`` ending at ``t`` (edge family, users: ``execute``,
``migrate``, ``rev_candidate``, ``rev_home``; servers: ``candidate``, ``home``, ``link``) in two
steps.

**Node-level attention** (GAT-style, ``H`` heads of width ``D = hidden / H``), per relation:

.. math::

    m_{ij} = W_r h_j + W^e_r e_{ij}, \qquad
    a_{ij} = \mathrm{LeakyReLU}\big(\langle a^{src}_r, W_r h_j \rangle
        + \langle a^{dst}_r, h_i \rangle + \langle a^e_r, W^e_r e_{ij} \rangle\big),

.. math::

    \alpha_{ij} = \operatorname{softmax}_{j \in N_r(i)} a_{ij}, \qquad
    z^r_i = \mathrm{ELU}\Big(\big\Vert_{k=1}^{H} \sum_{j \in N_r(i)} \alpha^k_{ij} m^k_{ij}
        + b_r\Big),

with the edge terms only on relations with edge features (candidate and link edges). The
attention weights sum to one, so :math:`z^r_i` is a weighted *mean*: its scale does not grow with
the degree, and the same weights serve a user with 1 or 10,000 neighbours.

**Semantic-level attention**, per node type and per graph ``g`` of a batch:

.. math::

    w_{r,g} = \frac{1}{|V_g|} \sum_{i \in V_g} q^\top \tanh(M z^r_i + c), \qquad
    \beta_{r,g} = \operatorname{softmax}_r w_{r,g}, \qquad
    Z_i = \sum_r \beta_{r, g(i)} z^r_i.

HAN averages over all nodes of the graph; averaging per graph of a batch (instead of over the
whole batch, as :class:`torch_geometric.nn.HANConv` does) makes a batched forward identical to
separate forwards.

**Update** (a post-norm transformer block; the residual path carries every input to the output):

.. math::

    h'_i = \mathrm{LN}(h_i + \mathrm{Drop}(O Z_i)), \qquad
    h''_i = \mathrm{LN}(h'_i + \mathrm{Drop}(\mathrm{FFN}(h'_i))).

Why not :class:`~torch_geometric.nn.HANConv` directly: it returns ``None`` for node types without
incoming edges, uses no edge features, and shares the semantic attention across the batch. Here
every relation is evaluated even with zero edges (a ``(2, 0)`` index yields
:math:`z^r = \mathrm{ELU}(b_r)`), and the residual path means every parameter is part of the
autograd graph for every input, as DDP requires. (Parameters can still get an exactly zero
gradient: e.g. ``rev_home`` attention, as each user has exactly one home and its softmax is 1,
or a relation with no edges in the whole batch. That is fine for DDP, which needs gradients to be
defined, not non-zero.) A caller that reads only some node types (``outputs``, e.g. a head on
servers alone) gets a pass restricted to the relations that can reach them: the other relations'
parameters are then outside the graph, as they could not affect what is read.

**Inference** (no autograd: under :func:`torch.no_grad`, or nothing requires grad) takes two
shortcuts with the same result to rounding, as long as :func:`fast_inference` allows them (the
default). Node-level attention on the CPU in float32 or float64, with dropout inactive, runs as one
compiled kernel (:func:`~gnnalloc.ops.relation_attention`): at the encoder's sizes the torch
version's time is mostly per-operation overhead (``benchmarks/RESULTS.md``). And semantic attention
scores a relation without edges in the batch (every node's :math:`z^r` is
:math:`\mathrm{ELU}(b_r)`) from one row instead of one per node. Training, autograd and other
devices take the torch version, and so do tracing, autocast, forward-mode AD and :mod:`torch.func`
transforms.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Collection, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import forward_ad
from torch_geometric.data import HeteroData
from torch_geometric.utils import scatter

from gnnalloc.core import InputError, check_count, is_real
from gnnalloc.nn._schema import EdgeType, GraphSchema
from gnnalloc.ops import RELATION_ATTENTION_DTYPES, gather_weighted_sum, relation_attention, segment_softmax

__all__ = ["HANEncoder", "HANLayer", "RelationAttention", "SemanticAttention", "check_dropout", "fast_inference"]

#: Whether inference may take the fast paths (:func:`fast_inference`); per thread and task.
_FAST = ContextVar("gnnalloc_fast_inference", default=True)


@contextmanager
def fast_inference(enabled: bool) -> Iterator[None]:
    """Allow (the default) or forbid, inside the ``with`` block (in this thread or task), the
    encoder's inference paths (module docstring). Both ways give the same embeddings to
    rounding; switching them off is for comparing the two and for timing the torch version.

    Forward-mode AD (dual tensors) and :mod:`torch.func` transforms (``jvp``, ``vmap``,
    ``grad``) take the torch version: the compiled path carries no tangents and reads only
    stored tensors. A relation recognises them on its inputs and on its bias (a parameter
    :func:`torch.func.functional_call` swaps with the others); for tangents on some of its
    parameters but not its bias, use ``fast_inference(False)``.

    Example::

        with fast_inference(False):
            reference = encoder(graph)
    """
    token = _FAST.set(bool(enabled))
    try:
        yield
    finally:
        _FAST.reset(token)


def _inference(module: nn.Module, tensors: Collection[Tensor]) -> bool:
    """Whether the fast paths may serve ``module`` on ``tensors``: :func:`fast_inference` allows
    them, nothing is being traced or compiled (a trace would record the shortcut taken for this
    graph's empty relations and replay it on graphs where they have edges), CPU autocast is off
    (it would hand the compiled path, which runs on the CPU only, reduced-precision inputs; the
    one-row scores are row-wise maps, equal under any autocast), every tensor is
    :func:`_plain` (else the compiled path would drop a tangent, whatever the grad mode, or fail
    on a transform's tensor), and nothing needs autograd (grad mode off, or nothing requires
    grad). Called on every relation: cheap checks only."""
    if not _FAST.get() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    if not all(_plain(t) for t in tensors):
        return False
    if not torch.is_grad_enabled():
        return True
    return not any(t.requires_grad for t in tensors) and not any(p.requires_grad for p in module.parameters())


def _plain(tensor: Tensor) -> bool:
    """Whether the compiled path can take ``tensor`` as it is: without a forward-mode tangent
    (which it would drop) and stored (a :mod:`torch.func` transform's tensors have no storage)."""
    if forward_ad.unpack_dual(tensor).tangent is not None:
        return False
    try:
        tensor.data_ptr()
    except RuntimeError:  # a transform's wrapper, e.g. inside torch.func.jvp or vmap
        return False
    return True


def check_dropout(dropout: object) -> None:
    """Raise :class:`~gnnalloc.core.InputError` naming ``dropout`` unless it is a probability
    in [0, 1): the encoder's one check, at construction, for every family's model (torch's own
    comes at the first training step, after a run has labelled its data)."""
    if not (is_real(dropout) and 0 <= dropout < 1):  # type: ignore[operator]  # a real number
        raise InputError(f"dropout: must be a number in [0, 1), got {dropout!r}")


def _key(edge_type: EdgeType) -> str:
    return "__".join(edge_type)


def _types(outputs: str | Collection[str]) -> list[str]:
    """Node types as a list: one type may be given as a string."""
    return [outputs] if isinstance(outputs, str) else list(outputs)


class RelationAttention(nn.Module):
    r"""Multi-head GAT-style attention over the edges of one relation (see the module docstring).

    Args:
        hidden: width of source, target and output embeddings (divisible by ``heads``).
        heads: number of attention heads ``H``.
        edge_dim: width of the relation's ``edge_attr``, or ``None`` if it has none.
        negative_slope: slope of the LeakyReLU on attention logits.
        dropout: dropout on the attention weights.
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        edge_dim: int | None = None,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_count("heads", heads, minimum=1)
        check_count("hidden", hidden, minimum=1)
        check_dropout(dropout)
        if hidden % heads:
            raise InputError(f"hidden: must be divisible by heads ({heads}), got {hidden!r}")
        self.heads, self.dim = heads, hidden // heads
        self.negative_slope, self.dropout = negative_slope, dropout
        self.lin_src = nn.Linear(hidden, hidden, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, self.dim))
        # <a_dst, h_i> per head is a linear map of the target embedding.
        self.att_dst = nn.Linear(hidden, heads, bias=False)
        self.lin_edge = nn.Linear(edge_dim, hidden, bias=False) if edge_dim else None
        self.att_edge = nn.Parameter(torch.empty(1, heads, self.dim)) if edge_dim else None
        self.bias = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_src.reset_parameters()
        self.att_dst.reset_parameters()
        nn.init.xavier_uniform_(self.att_src)
        if self.lin_edge is not None:
            self.lin_edge.reset_parameters()
            nn.init.xavier_uniform_(self.att_edge)
        nn.init.zeros_(self.bias)

    def forward(
        self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None
    ) -> Tensor:
        """Aggregate messages along ``edge_index`` (row 0 = source, row 1 = target).

        Args:
            x_src: source embeddings, ``(N_src, hidden)``.
            x_dst: target embeddings, ``(N_dst, hidden)``.
            edge_index: ``(2, E)`` long, ``E`` may be 0.
            edge_attr: ``(E, edge_dim)`` if the relation has edge features.

        Returns:
            :math:`z^r`, ``(N_dst, hidden)``; targets without incoming edges get ``ELU(b_r)``.

        Inference (no autograd, dropout inactive, CPU float32 or float64, no forward-mode AD or
        :mod:`torch.func` transform) takes a compiled path,
        :func:`~gnnalloc.ops.relation_attention`, with the same result to rounding: at the
        encoder's sizes the torch version's time is mostly per-operation overhead. Every other
        case, and any case inside ``fast_inference(False)``, takes the torch version.

        Raises:
            ValueError: naming ``edge_attr`` if the relation has edge features and it is missing
                or not ``(E, edge_dim)`` (an ``edge_attr`` of a relation without them is ignored).
        """
        edge_attr = self._edge_features(edge_index, edge_attr)
        if self._fusable(x_src, x_dst, edge_index, edge_attr):
            return self._fused(x_src, x_dst, edge_index, edge_attr)
        H, D = self.heads, self.dim
        src, dst = edge_index[0], edge_index[1]
        num_dst = x_dst.shape[0]
        z = self.lin_src(x_src).view(-1, H, D)
        logit_src = (z * self.att_src).sum(-1)
        logit = logit_src.index_select(0, src) + self.att_dst(x_dst).index_select(0, dst)
        if edge_attr is not None:
            edge_attr = edge_attr.to(z.dtype)
            w_edge = self.lin_edge.weight.view(H, D, -1)  # (H, D, F)
            # <a_e, W_e e> = e . (W_e^T a_e): never materialise the (E, H, D) edge messages.
            logit = logit + edge_attr @ torch.einsum("hdf,hd->fh", w_edge, self.att_edge[0])
        logit = F.leaky_relu(logit, self.negative_slope)
        alpha = segment_softmax(logit, dst, num_dst)
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        # The memory-bound hot spot of the encoder on large graphs.
        out = gather_weighted_sum(alpha, z, src, dst, num_dst)
        if edge_attr is not None:
            # sum_j alpha_ij W_e e_ij = W_e (sum_j alpha_ij e_ij), per head.
            weighted = alpha.unsqueeze(-1) * edge_attr.unsqueeze(1)  # (E, H, F)
            # In the weights' dtype: under autocast they can be wider than the messages.
            pooled = weighted.new_zeros(num_dst, H, edge_attr.shape[-1]).index_add_(0, dst, weighted)
            out = out + torch.einsum("nhf,hdf->nhd", pooled, w_edge)
        return F.elu(out.view(-1, H * D) + self.bias)

    def _edge_features(self, edge_index: Tensor, edge_attr: Tensor | None) -> Tensor | None:
        """``edge_attr`` as both versions take it: ``None`` for a relation without edge features,
        else checked to be ``(E, edge_dim)`` (each version would otherwise fail its own way, and
        one without edges not at all)."""
        if self.lin_edge is None:
            return None
        if edge_attr is None:
            raise InputError("edge_attr: this relation has edge features, got None")
        expected = (edge_index.shape[1], self.lin_edge.in_features)
        # A trace records one graph's shapes: comparing them there would only warn.
        if not torch.jit.is_tracing() and tuple(edge_attr.shape) != expected:
            raise InputError(
                f"edge_attr: expected shape {expected} (E, edge_dim), got {tuple(edge_attr.shape)}"
            )
        return edge_attr

    def _fusable(self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_attr: Tensor | None) -> bool:
        """Whether :meth:`forward` may take the compiled path (its docstring)."""
        if self.training and self.dropout > 0:
            return False
        dtype = self.bias.dtype
        if dtype not in RELATION_ATTENTION_DTYPES or x_src.dtype != dtype or x_dst.dtype != dtype:
            return False
        if not (self.bias.is_cpu and x_src.is_cpu and x_dst.is_cpu and edge_index.is_cpu) or edge_index.dtype != torch.long:
            return False
        # The bias stands for the parameters in the tangent and transform checks (_plain).
        inputs = (x_src, x_dst, self.bias) if edge_attr is None else (x_src, x_dst, edge_attr, self.bias)
        return _inference(self, inputs)

    def _fused(self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_attr: Tensor | None) -> Tensor:
        """:meth:`forward`'s compiled path: the linear maps in torch, the rest in one kernel call."""
        edge_weight = att_edge = None
        if edge_attr is not None:  # checked by forward: the relation has edge features
            edge_weight, att_edge = self.lin_edge.weight, self.att_edge[0]
        if edge_index.shape[1] == 0:  # every target gets ELU(b), computed once
            return F.elu(self.bias).expand(x_dst.shape[0], -1).contiguous()
        return relation_attention(
            self.lin_src(x_src).view(-1, self.heads, self.dim), self.att_dst(x_dst), self.att_src[0], edge_index,
            self.bias, self.negative_slope, edge_attr, edge_weight, att_edge,
        )


class SemanticAttention(nn.Module):
    r"""HAN's metapath-level attention, averaged per graph of a batch (see the module docstring).

    Args:
        hidden: embedding width.
        attention_hidden: width of :math:`M` (default ``hidden``).
    """

    def __init__(self, hidden: int, attention_hidden: int | None = None) -> None:
        super().__init__()
        attention_hidden = attention_hidden or hidden
        self.lin = nn.Linear(hidden, attention_hidden)
        self.q = nn.Parameter(torch.empty(attention_hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        nn.init.normal_(self.q, std=self.q.shape[0] ** -0.5)

    def forward(
        self, zs: Tensor, batch: Tensor, num_graphs: int, shared: Sequence[int] = (),
    ) -> tuple[Tensor, Tensor]:
        """Combine per-relation embeddings.

        Args:
            zs: :math:`z^r`, ``(R, N, hidden)``.
            batch: graph of each node, ``(N,)`` long.
            num_graphs: number of graphs ``G``.
            shared: relations (indices into ``zs``) whose rows are the same for every node, as
                a relation without edges (every :math:`z^r_i = \\mathrm{ELU}(b_r)`): their scores
                are computed from the first node's row alone, the same to rounding. For
                inference: with autograd, only that row would receive their scores' gradient.

        Returns:
            :math:`Z`, ``(N, hidden)``, and the weights :math:`\\beta`, ``(R, G)``.
        """
        if any(not 0 <= r < zs.shape[0] for r in shared):
            raise InputError(f"shared: relation indices must be in [0, {zs.shape[0]}), got {list(shared)!r}")
        if shared and zs.shape[1]:
            score = self._score_shared(zs, shared)
        else:
            score = (torch.tanh(self.lin(zs)) * self.q).sum(-1)  # (R, N)
        per_graph = scatter(score, batch, dim=1, dim_size=num_graphs, reduce="mean")
        beta = torch.softmax(per_graph, dim=0)
        return (beta.index_select(1, batch).unsqueeze(-1) * zs).sum(0), beta

    def _score_shared(self, zs: Tensor, shared: Sequence[int]) -> Tensor:
        """:meth:`forward`'s scores ``(R, N)``, those of the ``shared`` relations from one row."""
        num_relations, num_nodes = zs.shape[:2]
        rows = sorted(set(shared))
        index = torch.tensor(rows, device=zs.device)
        once = (torch.tanh(self.lin(zs.index_select(0, index)[:, 0])) * self.q).sum(-1)  # (R_shared,)
        score = zs.new_empty(num_relations, num_nodes).index_copy_(0, index, once.unsqueeze(1).expand(-1, num_nodes))
        others = [r for r in range(num_relations) if r not in rows]
        if others:
            index = torch.tensor(others, device=zs.device)
            score.index_copy_(0, index, (torch.tanh(self.lin(zs.index_select(0, index))) * self.q).sum(-1))
        return score


class HANLayer(nn.Module):
    r"""One heterogeneous layer: node-level attention per relation, semantic attention per node
    type, then a residual + feed-forward block (see the module docstring).

    Args:
        hidden: embedding width.
        heads: attention heads per relation.
        edge_types: relations; every node type receiving one is updated, the others pass through.
        edge_dims: ``edge_attr`` width of relations that have edge features.
        dropout: dropout on attention weights and on the residual branches.
        negative_slope: LeakyReLU slope of node-level attention.
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        edge_types: Sequence[EdgeType],
        edge_dims: Mapping[EdgeType, int],
        dropout: float = 0.0,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.edge_types = [tuple(e) for e in edge_types]
        self.node_types = sorted({e[2] for e in self.edge_types})
        self.dropout = dropout
        self.relations = nn.ModuleDict(
            {
                _key(e): RelationAttention(hidden, heads, edge_dims.get(e), negative_slope, dropout)
                for e in self.edge_types
            }
        )
        self.semantic = nn.ModuleDict({t: SemanticAttention(hidden) for t in self.node_types})
        self.out = nn.ModuleDict({t: nn.Linear(hidden, hidden) for t in self.node_types})
        self.norm = nn.ModuleDict({t: nn.LayerNorm(hidden) for t in self.node_types})
        self.ffn = nn.ModuleDict(
            {
                t: nn.Sequential(
                    nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden)
                )
                for t in self.node_types
            }
        )
        self.ffn_norm = nn.ModuleDict({t: nn.LayerNorm(hidden) for t in self.node_types})

    def forward(
        self,
        x: Mapping[str, Tensor],
        edge_index: Mapping[EdgeType, Tensor],
        edge_attr: Mapping[EdgeType, Tensor],
        batch: Mapping[str, Tensor],
        num_graphs: int,
        outputs: str | Collection[str] | None = None,
    ) -> dict[str, Tensor]:
        """Update the embeddings.

        Args:
            x: embeddings per node type, ``(N_t, hidden)``.
            edge_index: ``(2, E)`` per relation (must hold every relation; ``E`` may be 0).
            edge_attr: ``(E, edge_dim)`` per relation with edge features.
            batch: graph of each node per node type, ``(N_t,)``.
            num_graphs: number of graphs in the batch.
            outputs: the node types to return (default: every type of ``x``); relations into
                other types are not evaluated. ``x`` must hold :meth:`inputs_of` them.
        """
        outputs = list(x) if outputs is None else _types(outputs)
        updated = [t for t in self.node_types if t in outputs]
        incoming: dict[str, list[Tensor]] = {t: [] for t in updated}
        # Relations without edges (each gives every node ELU(b_r)), scored once (module docstring).
        shared: dict[str, list[int]] = {t: [] for t in updated}
        fast = _inference(self, x.values())
        for e in self.edge_types:
            src, _, dst = e
            if dst in incoming:
                if fast and edge_index[e].shape[1] == 0:
                    shared[dst].append(len(incoming[dst]))
                try:
                    z = self.relations[_key(e)](x[src], x[dst], edge_index[e], edge_attr.get(e))
                except InputError as exc:  # a relation's error does not know which relation it is
                    raise InputError(f"{exc} (relation {e})") from None
                incoming[dst].append(z)
        out = {t: x[t] for t in outputs}
        for t in updated:
            z, _ = self.semantic[t](torch.stack(incoming[t]), batch[t], num_graphs, shared[t])
            h = self.norm[t](x[t] + F.dropout(self.out[t](z), self.dropout, self.training))
            ffn = F.dropout(self.ffn[t](h), self.dropout, self.training)
            out[t] = self.ffn_norm[t](h + ffn)
        return out

    def inputs_of(self, outputs: str | Collection[str]) -> set[str]:
        """The node types whose input embeddings the ``outputs`` types' updates read: each output
        type itself (the residual path) and the sources of the relations into it."""
        wanted = set(_types(outputs))
        return wanted | {src for src, _, dst in self.edge_types if dst in wanted}


class HANEncoder(nn.Module):
    r"""Embeddings of every node type from an instance graph (or a batch of them).

    Input features are projected by a two-layer MLP per node type, then ``layers``
    :class:`HANLayer` update every node type that receives a relation. Only attention (weighted
    means), means and per-node maps are used, so the model is size-agnostic: the same weights run
    on 1 or 20,000 users, and a batch gives the same embeddings as its graphs one by one (with
    dropout off).

    Args:
        schema: node types with input widths, relations with edge-feature widths.
        hidden: embedding width.
        heads: attention heads (``hidden`` must be divisible by ``heads``).
        layers: number of :class:`HANLayer`.
        dropout: dropout probability (attention weights and residual branches).
        negative_slope: LeakyReLU slope of node-level attention.
    """

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        check_dropout(dropout)
        self.schema = schema
        self.hidden = hidden
        self.inputs = nn.ModuleDict(
            {
                t: nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden))
                for t, width in schema.node_features.items()
            }
        )
        edge_dims = schema.edge_dims
        self.layers = nn.ModuleList(
            HANLayer(hidden, heads, schema.edge_types, edge_dims, dropout, negative_slope)
            for _ in range(layers)
        )

    def forward(self, graph: HeteroData, outputs: str | Collection[str] | None = None) -> dict[str, Tensor]:
        """Encode a graph built to :attr:`schema` or a batch of them.

        Args:
            graph: a :class:`HeteroData` or :class:`~torch_geometric.data.Batch`. Missing edge
                types are treated as empty.
            outputs: the node type(s) whose embeddings the caller reads (default: all). Each
                layer then evaluates only the relations that can reach them (e.g. a head on
                servers alone skips the last layer's relations into users, most of the edges),
                with the same embeddings of ``outputs`` as a full pass. Training is unchanged
                too: the skipped relations' parameters could not reach ``outputs`` anyway, so
                they get no gradient either way.

        Returns:
            ``(N_t, hidden)`` embeddings per node type of ``outputs``, in the dtype of the input
            layers and on the device of ``graph``.

        Raises:
            ValueError: naming ``outputs`` if it is empty or holds a type the schema does not have.
        """
        node_types = self.schema.node_types
        outputs = list(node_types) if outputs is None else _types(outputs)
        if not outputs or any(t not in node_types for t in outputs):
            raise InputError(f"outputs: must name node types of the schema ({node_types}), got {outputs!r}")
        # Which types each layer must return, from the last layer back to the inputs.
        wanted = [outputs]
        for layer in reversed(self.layers):
            wanted.append(sorted(layer.inputs_of(wanted[-1])))
        wanted.reverse()  # wanted[0]: input embeddings; wanted[i + 1]: layer i's outputs
        edge_dims = self.schema.edge_dims
        dtype = next(iter(self.inputs.values()))[0].weight.dtype
        x = {t: self.inputs[t](graph[t].x.to(dtype)) for t in wanted[0]}
        device = x[wanted[0][0]].device
        num_graphs = int(getattr(graph, "num_graphs", 1))
        batch = {}
        for t in node_types:
            store = graph[t]
            if "batch" in store:
                batch[t] = store.batch
            else:
                batch[t] = torch.zeros(store.x.shape[0], dtype=torch.long, device=device)
        edge_index, edge_attr = {}, {}
        empty = torch.zeros(2, 0, dtype=torch.long, device=device)
        for e in self.schema.edge_types:
            if e in graph.edge_types:
                edge_index[e] = graph[e].edge_index
                if e in edge_dims:
                    edge_attr[e] = graph[e].edge_attr
            else:
                edge_index[e] = empty
                if e in edge_dims:
                    edge_attr[e] = torch.zeros(0, edge_dims[e], dtype=dtype, device=device)
        for layer, layer_outputs in zip(self.layers, wanted[1:]):
            x = layer(x, edge_index, edge_attr, batch, num_graphs, layer_outputs)
        return x
