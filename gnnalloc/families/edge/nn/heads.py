r"""Decision heads: from embeddings to raw, non-negative compute and bandwidth decisions.

The heads score every candidate pair ``p = (u, s)`` and every user, then turn the scores into
*capacity shares*:

.. math::

    \sigma_p = f\big([h_u \Vert g_s \Vert e_p]\big), \qquad
    x_p = C_s \cdot \frac{m^c_u\, e^{\sigma_p + \eta [p \text{ home}]}}
        {\sum_{p' = (u', s)} m^c_{u'}\, e^{\sigma_{p'} + \eta [p' \text{ home}]}},

.. math::

    \tau_u = g\big([h_u \Vert g_{h(u)}]\big), \qquad
    y_u = B_{h(u)} \cdot
        \frac{m^b_u\, e^{\tau_u}}{\sum_{u' : h(u') = h(u)} m^b_{u'}\, e^{\tau_{u'}}},

i.e. a softmax within each server (over its candidate pairs for compute, over its home users for
bandwidth) of logits :math:`\ln m_u + \text{score}`, times the server's capacity. ``f`` and ``g``
are two-layer MLPs; scores are soft-clamped to :math:`\pm` ``max_score`` by a scaled ``tanh``.
:math:`\eta` is a learned bias of home pairs (initially ``home_bias = 2``): executing at home
costs no link capacity, so at equal demand a home claim weighs :math:`e^2 \approx 7` migrated
ones.

Why shares rather than "demand x learned ratio":

* **Sane from the first step.** The last layers start near zero, so the untrained model outputs
  :math:`x_p \approx C_s\, \tilde m_p / \sum_{p' \text{ at } s} \tilde m_{p'}` with claims
  :math:`\tilde m_p = m^c_u e^{\eta [p \text{ home}]}`, and
  :math:`y_u \approx B_{h(u)} m^b_u / \sum_{\text{home users}} m^b`: the demand-proportional
  share baseline (:func:`gnnalloc.families.edge.solvers.proportional_share`, before its link fitting) with a
  preference for home execution. Behind the fast projection, a moderate bias beats plain
  proportional claims for the untrained model, and a large one is worse again
  (``benchmarks/RESULTS.md``).
* **Server and access constraints hold by construction** (:math:`\sum_{p \text{ at } s} x_p = C_s`,
  :math:`\sum_{h(u) = s} y_u = B_s`); only the link constraints are left to the projection, which
  thus has less to correct.
* **Capacity is never left idle** (before link limits), as every increasing utility wants: the
  model only has to learn *who* gets a server's capacity (competition between users, whether
  migrating is worth the link), not *how much* in absolute units. Any allocation that
  exhausts the servers is reachable (logits :math:`\ln x_p`), up to the score bound.
* **Scale-free**: multiplying capacities and demands by a constant scales the output by the same
  constant, whatever the embeddings.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError
from gnnalloc.families.edge.graph import CANDIDATE_FEATURES
from gnnalloc.ops import segment_softmax
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers.functional import waterfill_bandwidth, waterfill_prices

__all__ = ["DecisionHeads"]

_CANDIDATE = ("user", "candidate", "server")


def _mlp(in_features: int, hidden: int, init_scale: float) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, 1))
    # A small (not zero) last layer: scores start near 0, i.e. at proportional share, while every
    # parameter still receives gradient from the first step.
    with torch.no_grad():
        mlp[-1].weight.mul_(init_scale)
        mlp[-1].bias.zero_()
    return mlp


class DecisionHeads(nn.Module):
    r"""Raw compute per pair and bandwidth per user as shares of server capacities (see module
    docstring).

    Args:
        hidden: width of the user and server embeddings.
        edge_features: width of the candidate ``edge_attr``.
        mlp_hidden: hidden width of the two scoring MLPs (default ``hidden``).
        init_scale: factor on the default initialisation of the MLPs' last layers; small values
            start the model at the demand-proportional share.
        max_score: bound :math:`S` on the scores, applied as :math:`S \tanh(\cdot / S)`.
        home_bias: initial :math:`\eta`, the learned extra logit of home pairs.
        bandwidth: ``"waterfill"`` (default): access bandwidth is the exact per-home-server
            optimum (:func:`gnnalloc.families.edge.solvers.functional.waterfill_groups`), since that
            subproblem separates and has a closed form; ``"learned"``: the share head above.
    """

    def __init__(
        self,
        hidden: int,
        edge_features: int = len(CANDIDATE_FEATURES),
        mlp_hidden: int | None = None,
        init_scale: float = 1e-2,
        max_score: float = 10.0,
        home_bias: float = 2.0,
        bandwidth: str = "waterfill",
    ) -> None:
        super().__init__()
        if bandwidth not in ("waterfill", "learned"):
            raise InputError(f"bandwidth: expected 'waterfill' or 'learned', got {bandwidth!r}")
        self.bandwidth = bandwidth
        mlp_hidden = mlp_hidden or hidden
        self.max_score = max_score
        self.home_bias = nn.Parameter(torch.tensor(float(home_bias)))
        # +2 inputs: the pair's position against its server's water-filling price (see forward).
        self.pair_score = _mlp(2 * hidden + edge_features + 2, mlp_hidden, init_scale)
        self.user_score = _mlp(2 * hidden, mlp_hidden, init_scale) if bandwidth == "learned" else None

    def _bound(self, score: Tensor) -> Tensor:
        return self.max_score * torch.tanh(score / self.max_score)

    def forward(
        self, user_emb: Tensor, server_emb: Tensor, graph: HeteroData, problem: ProblemTensors
    ) -> tuple[Tensor, Tensor]:
        """Raw decisions for the instances of ``problem``.

        Args:
            user_emb: ``(U, hidden)`` from the encoder.
            server_emb: ``(S, hidden)``.
            graph: the graph (or batch) the embeddings come from; provides the candidate
                ``edge_attr`` (edge ``i`` = pair ``i``).
            problem: the same instances as tensors (collated in the same order); provides
                ``pair_user``, ``pair_server``, ``user_server``, minimums and capacities.

        Returns:
            ``raw_compute (P,)`` and ``raw_bandwidth (U,)``, non-negative, in ``problem.dtype``.
        """
        edge_attr = graph[_CANDIDATE].edge_attr
        if edge_attr.shape[0] != problem.num_pairs or user_emb.shape[0] != problem.num_users:
            raise InputError(
                f"graph and problem disagree: {edge_attr.shape[0]} candidate edges and "
                f"{user_emb.shape[0]} users vs {problem.num_pairs} pairs and "
                f"{problem.num_users} users"
            )
        dtype = problem.dtype
        pair_user, pair_server, home = problem.pair_user, problem.pair_server, problem.user_server
        num_servers = problem.num_servers

        pair_input = torch.cat(
            [
                user_emb.index_select(0, pair_user),
                server_emb.index_select(0, pair_server),
                edge_attr.to(user_emb.dtype),
                _price_position(problem).to(user_emb.dtype),
            ],
            dim=-1,
        )
        pair_score = self._bound(self.pair_score(pair_input).squeeze(-1)).to(dtype)
        is_home = (problem.pair_link < 0).to(dtype)
        pair_logit = (
            torch.log(problem.compute_min).index_select(0, pair_user)
            + pair_score
            + self.home_bias.to(dtype) * is_home
        )
        pair_share = segment_softmax(pair_logit, pair_server, num_servers)
        raw_compute = problem.server_compute.index_select(0, pair_server) * pair_share

        if self.user_score is None:
            return raw_compute, waterfill_bandwidth(problem)
        user_input = torch.cat([user_emb, server_emb.index_select(0, home)], dim=-1)
        user_score = self._bound(self.user_score(user_input).squeeze(-1)).to(dtype)
        user_logit = torch.log(problem.bandwidth_min) + user_score
        user_share = segment_softmax(user_logit, home, num_servers)
        raw_bandwidth = problem.server_bandwidth.index_select(0, home) * user_share
        return raw_compute, raw_bandwidth


def _price_position(problem: ProblemTensors) -> Tensor:
    r"""Where each pair stands against its server's contention price, ``(P, 2)``.

    Water-filling server ``s``'s compute among all pairs that could use it, as if each were a
    separate user, gives a price :math:`\lambda_s`; a user is above its minimum there when
    :math:`w_u/m_u > \lambda_s` and dropped when :math:`k w_u/m_u < \lambda_s`. The two
    features are :math:`\ln(w_u/(m_u\lambda_s))` and :math:`\ln(k w_u/(m_u\lambda_s))`, clamped to
    :math:`\pm 20`: the quantities that decide a user's fate at an isolated server.
    """
    with torch.no_grad():
        pair_user = problem.pair_user
        minimum = problem.compute_min.index_select(0, pair_user)
        weight = problem.weight.index_select(0, pair_user)
        penalty = problem.penalty.index_select(0, pair_user)
        price = waterfill_prices(problem)
        tiny = torch.finfo(minimum.dtype).tiny
        log_ratio = torch.log(weight / minimum) - torch.log(price.index_select(0, problem.pair_server).clamp(min=tiny))
        return torch.stack([log_ratio, log_ratio + torch.log(penalty)], dim=-1).clamp(-20.0, 20.0)
