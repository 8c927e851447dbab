r"""The learned round-time predictor: a HAN encoder over the star graph guesses the optimal round
time, the exact solver's bisection finishes from the guess.

.. math::

    \hat T = T_\mathrm{ref}\, \exp\Big(\mathrm{MLP}\big[h_\mathrm{server};\
    \mathrm{mean}_n h_n;\ \max_n h_n\big]\Big),

with :math:`h` the embeddings of the generic :class:`gnnalloc.nn.HANEncoder` over the graph of
:mod:`._graph` and :math:`T_\mathrm{ref}` its latency scale. Trained by regression of
:math:`\log(T^\star / T_\mathrm{ref})` on the exact solver's optimum (supervision from a
certified solver). The min-max optimum is set by its slowest clients, hence the max pooling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.utils import scatter

from gnnalloc.core import InputError, check_count
from gnnalloc.families.sfl._graph import SCHEMA
from gnnalloc.nn import Checkpointed, HANEncoder

__all__ = ["FAMILY_NAME", "RoundTimePredictor"]

#: The family name checkpoints of this model record.
FAMILY_NAME = "sfl"


class RoundTimePredictor(Checkpointed, nn.Module):
    """HAN encoder + pooled head predicting ``log(T* / T_ref)`` per instance.

    Args:
        hidden: embedding width.
        heads: attention heads per relation (divides ``hidden``).
        layers: encoder layers.
        dropout: dropout in the encoder.
    """

    family_name = FAMILY_NAME
    #: Bounds on the architecture a checkpoint may ask for, checked before any tensor is allocated.
    size_limits = {"hidden": (1, 4096), "heads": (1, 64), "layers": (1, 64)}
    model_name = "sfl round-time predictor"

    def __init__(self, hidden: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("heads", heads), ("layers", layers)):
            check_count(name, value)
        if hidden < 1 or heads < 1 or hidden % heads:
            raise InputError(f"hidden: must be a positive multiple of heads ({heads!r}), got {hidden!r}")
        self.hparams = {"hidden": hidden, "heads": heads, "layers": layers, "dropout": dropout}
        self.encoder = HANEncoder(SCHEMA, hidden, heads, layers, dropout)
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.metadata: dict[str, Any] = {}

    def forward(self, graph: HeteroData) -> Tensor:
        """``log(T_hat / T_ref)`` per graph, ``(num_graphs,)``."""
        h = self.encoder(graph)
        clients, server = h["client"], h["server"]
        store = graph["client"]
        batch = store.batch if "batch" in store else torch.zeros(clients.shape[0], dtype=torch.long, device=clients.device)
        graphs = server.shape[0]
        mean = scatter(clients, batch, dim=0, dim_size=graphs, reduce="mean")
        top = scatter(clients, batch, dim=0, dim_size=graphs, reduce="max")
        return self.head(torch.cat([server, mean, top], dim=1)).squeeze(-1)

    @torch.no_grad()
    def round_time(self, graph: HeteroData) -> Tensor:
        """The predicted round time ``T_hat`` in seconds per graph, float64 ``(num_graphs,)``."""
        return graph.scale.to(torch.float64) * torch.exp(self(graph).to(torch.float64))
