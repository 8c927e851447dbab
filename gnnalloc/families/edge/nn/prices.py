r"""The learned price model: graph -> HAN encoder -> one log-price per server and per link.

The compute problem's dual has one price per server (:math:`\lambda_s`) and per link
(:math:`\mu_l`), a few hundred numbers whatever the number of users
(:mod:`gnnalloc.families.edge.solvers._dual`). The model predicts them *relative to a scale-free
reference*, so that a model trained on small instances transfers across sizes and units:

.. math::  \lambda_s = \lambda^0_s\, e^{r_s}, \qquad \mu_l = \nu_l\, e^{r_l}, \qquad
    \nu_l = \frac{\max(\lambda^0_a, \lambda^0_b)}{\bar d_l},

with :math:`\lambda^0` the per-server water-filling prices
(:func:`~gnnalloc.families.edge.solvers.functional.waterfill_prices`: the price that clears the
server if nobody had another option), :math:`a, b` the link's ends and :math:`\bar d_l` the mean
data rate of the pairs that can use it (a pair pays :math:`\lambda_s + d_p \mu_l`, so
:math:`\nu_l` is a link price in the units of its servers' prices). :math:`r_s` reads the server's
embedding, :math:`r_l` the symmetric combination of its two ends' embeddings and its migration
pressure :math:`\ln(1 + \sum_{p \text{ over } l} d_p m_{u(p)} / L_l)`. Links no pair can use get
price 0 (their capacity can never bind).

The prediction is a *start*: :func:`~gnnalloc.families.edge.solvers.solve_dual` refines it with
L-BFGS iterations and returns the allocation with a proven bound (the ``gnn`` method); ``gnn`` asks
it (``clear_start_links``) to replace the predicted link prices, on instances with few users per
server, by those that clear the links at the predicted server prices.
:func:`~gnnalloc.families.edge.solvers.solve_dual` keeps the prediction only where it is a better
start than the water-filling prices by the measure L-BFGS minimises, the smoothed dual (one
evaluation each), so a poor prediction on an unusual instance costs little against the classical
start. On instances with many users per server the model reads a uniform sample of them
(:meth:`PricePredictor.predict`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError, check_count
from gnnalloc.families.edge.graph import SCHEMA, build_graph, collate_graphs
from gnnalloc.families.edge.problem import Instance, ProblemTensors, sample_users
from gnnalloc.families.edge.solvers import check_temperature
from gnnalloc.families.edge.solvers.functional import waterfill_prices, waterfill_prices_from
from gnnalloc.nn import Configured, HANEncoder, checkpoint_payload, load_checkpoint_data, rebuild_model

__all__ = ["PREDICTION_USERS_PER_SERVER", "PricePredictor", "check_model_settings", "price_references"]

#: Largest accepted size hyperparameters (checked before any tensor is allocated).
_SIZE_LIMITS = {"hidden": (1, 4096), "heads": (1, 64), "layers": (0, 32), "max_metapath_neighbors": (0, 4096)}

#: :meth:`PricePredictor.predict` reads a uniform sample of the users, this many per server on
#: average, on instances with at least twice as many: the sample's prices are close to the whole
#: instance's (:func:`~gnnalloc.families.edge.problem.sample_users`) and its density is within the
#: training's, at a fraction of the cost (measured in ``benchmarks/RESULTS.md``).
PREDICTION_USERS_PER_SERVER = 20

#: Relative prices below ``e^{-this}`` of their reference are treated as zero by the start (the
#: constraint is not binding; L-BFGS keeps a zero price at its bound until the gradient says
#: otherwise).
LOG_FLOOR = 9.0


def price_references(
    problem: ProblemTensors, water_filling: Tensor | np.ndarray | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""The references the model's log-prices are relative to (module docstring).
    ``water_filling``: :func:`~gnnalloc.families.edge.solvers.functional.waterfill_prices` of
    ``problem`` if the caller has it (computed otherwise).

    Returns:
        ``server_reference`` :math:`\lambda^0` ``(S,)`` (positive: unused servers take the
        largest), ``link_reference`` :math:`\nu_l` ``(L,)``, the link ends ``(2, L)`` (long,
        ``-1`` for links no pair uses) and the links' migration pressure ``(L,)``.
    """
    server = waterfill_prices_from(problem, water_filling)
    fallback = server.max().clamp(min=1.0) if server.numel() else server.new_tensor(1.0)
    server = torch.where(server > 0, server, fallback)
    num_links = problem.num_links
    migrated = problem.pair_link >= 0
    link = problem.pair_link[migrated]
    home = problem.user_server[problem.pair_user[migrated]]
    target = problem.pair_server[migrated]
    rate = problem.pair_link_weight[migrated]
    count = server.new_zeros(num_links).index_add_(0, link, torch.ones_like(rate))
    mean_rate = server.new_zeros(num_links).index_add_(0, link, rate) / count.clamp(min=1.0)
    low = torch.full((num_links,), -1, dtype=torch.long, device=server.device)
    high = torch.full((num_links,), -1, dtype=torch.long, device=server.device)
    low.scatter_reduce_(0, link, torch.minimum(home, target), "amax")
    high.scatter_reduce_(0, link, torch.maximum(home, target), "amax")
    ends = torch.stack([low, high])
    used = count > 0
    end_price = torch.maximum(server[low.clamp(min=0)], server[high.clamp(min=0)])
    reference = torch.where(used, end_price / mean_rate.clamp(min=1e-12), fallback)
    demand = problem.compute_min[problem.pair_user[migrated]] * rate
    load = server.new_zeros(num_links).index_add_(0, link, demand)
    # Capacities count from 1e-12 of the largest (and of 1), so an empty link set needs no max.
    largest = float(problem.link_capacity.max().clamp(min=1.0)) if num_links else 1.0
    pressure = torch.log1p(load / problem.link_capacity.clamp(min=1e-12 * largest))
    return server, reference, ends, pressure


def check_model_settings(
    hidden: int = 32, heads: int = 2, layers: int = 2, max_metapath_neighbors: int = 16,
    temperature: float = 0.03,
) -> None:
    """Raise :class:`~gnnalloc.core.InputError` naming the setting unless :class:`PricePredictor`
    accepts it: sizes within :data:`_SIZE_LIMITS`, ``hidden`` a multiple of ``heads``, a
    temperature of at least :data:`~gnnalloc.families.edge.solvers.MIN_TEMPERATURE` (its training
    config checks its settings with this before any labelling)."""
    check_temperature("temperature", temperature)
    for name, value in (("hidden", hidden), ("heads", heads), ("layers", layers),
                        ("max_metapath_neighbors", max_metapath_neighbors)):
        check_count(name, value)
        low, high = _SIZE_LIMITS[name]
        if not low <= value <= high:
            raise InputError(f"{name}: must be an integer in [{low}, {high}], got {value!r}")
    if hidden % heads:
        raise InputError(f"hidden: must be a multiple of heads ({heads}), got {hidden!r}")


class PricePredictor(Configured, nn.Module):
    r"""Predicts every server's and link's dual price of an instance (module docstring).

    Args:
        hidden: embedding width of the encoder.
        heads: attention heads.
        layers: HAN layers.
        max_metapath_neighbors: cap on metapath neighbours per user in the graph builder (0: no
            user-user metapath edges, as the shipped model; their relations then give every user
            the same constant, and the graph skips building them).
        temperature: the smoothing :math:`\tau` of the dual whose minimisers the model was trained
            to predict; the ``gnn`` method refines the prediction at this temperature, so that
            the start lies near the minimiser of the very function L-BFGS then minimises.
    """

    #: The family whose instances this model prices (what its checkpoints record).
    family_name = "edge"

    def __init__(
        self, hidden: int = 32, heads: int = 2, layers: int = 2, max_metapath_neighbors: int = 16,
        temperature: float = 0.03,
    ) -> None:
        super().__init__()
        check_model_settings(hidden, heads, layers, max_metapath_neighbors, temperature)
        self.hparams: dict[str, Any] = dict(
            hidden=hidden, heads=heads, layers=layers, max_metapath_neighbors=max_metapath_neighbors,
            temperature=float(temperature),
        )
        self.metadata: dict[str, Any] = {}
        self.encoder = HANEncoder(SCHEMA, hidden=hidden, heads=heads, layers=layers, dropout=0.0)
        self.server_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 1))
        self.link_head = nn.Sequential(nn.Linear(2 * hidden + 1, hidden), nn.ELU(), nn.Linear(hidden, 1))

    @property
    def temperature(self) -> float:
        """The smoothing temperature of the prices this model predicts (constructor argument)."""
        return float(self.hparams["temperature"])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prepare(self, instances: Sequence[Instance], seed: int = 0) -> tuple[HeteroData, ProblemTensors]:
        """Graph batch and float64 problem tensors of ``instances``, on the model's device."""
        device, cap = self.device, self.hparams["max_metapath_neighbors"]
        graphs = [build_graph(i, max_metapath_neighbors=cap, seed=seed) for i in instances]
        problems = [ProblemTensors.from_instance(i, dtype=torch.float64, device=device) for i in instances]
        if len(instances) == 1:
            return graphs[0].to(device), problems[0]
        return collate_graphs(graphs).to(device), ProblemTensors.collate(problems)

    def forward(
        self, graph: HeteroData, problem: ProblemTensors, references: tuple[Tensor, ...] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Log-prices relative to :func:`price_references`: ``(S,)`` for servers, ``(L,)`` for
        links (float32; links no pair uses get ``-LOG_FLOOR``). ``references``: that function's
        result for ``problem`` if the caller has it (it is computed otherwise)."""
        # Only server embeddings are read: the last layer's relations into users could not
        # reach the prices (nor their gradients), so they are not evaluated.
        server = self.encoder(graph, ("server",))["server"]
        server_log = self.server_head(server).squeeze(-1)
        _, _, ends, pressure = price_references(problem) if references is None else references
        used = ends[0] >= 0
        a, b = server[ends[0].clamp(min=0)], server[ends[1].clamp(min=0)]
        link_in = torch.cat([a + b, a * b, pressure.to(server.dtype).unsqueeze(-1)], dim=-1)
        link_log = torch.where(used, self.link_head(link_in).squeeze(-1), -LOG_FLOOR)
        return server_log, link_log

    @torch.no_grad()
    def predict(
        self, instance: Instance, water_filling: Tensor | np.ndarray | None = None,
        users_per_server: int | None = PREDICTION_USERS_PER_SERVER,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(server_price, link_price)`` of ``instance``, finite and non-negative, ready for
        ``solve_dual(instance, start=...)``. ``water_filling``: the instance's
        :func:`~gnnalloc.families.edge.solvers.functional.waterfill_prices` if the caller has
        them (``solve_dual`` takes them too). ``users_per_server``: with at least twice this
        many users per server on average, the model reads a uniform sample of the users, this
        many per server on average, capacities scaled to the share kept
        (:func:`~gnnalloc.families.edge.problem.sample_users`; a fixed seed: the same prices
        every time), and its log-prices are taken relative to the whole instance's water-filling
        prices; ``None`` reads every user. Links no sampled user can use get price 0.

        Raises:
            ValueError: naming ``users_per_server`` if it is not a positive integer or ``None``.
        """
        if users_per_server is not None:
            check_count("users_per_server", users_per_server, minimum=1)
        if self.training:
            self.eval()
        read = instance
        num_servers = instance.num_servers
        if users_per_server is not None and 0 < 2 * users_per_server * num_servers <= instance.num_users:
            if water_filling is None:  # the whole instance's, the units of the prices returned
                water_filling = waterfill_prices(ProblemTensors.from_instance(
                    instance, dtype=torch.float64, device=self.device))
            read = sample_users(instance, users_per_server * num_servers)
        graph, problem = self.prepare([read])
        references = price_references(problem, water_filling)  # one for the model and the prices
        server_log, link_log = self(graph, problem, references)
        return prices_from_logs(problem, server_log, link_log, references)

    def checkpoint_dict(self, **metadata: Any) -> dict[str, Any]:
        """A small, ``weights_only``-loadable checkpoint of this model."""
        return checkpoint_payload(self, self.family_name, self.config(), metadata, model="prices")

    def save(self, path: str | Path, **metadata: Any) -> None:
        """Write :meth:`checkpoint_dict` to ``path``."""
        torch.save(self.checkpoint_dict(**metadata), Path(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "PricePredictor":
        """Restore a model saved by :meth:`save` (or a Lightning checkpoint whose module holds it
        as ``model``), loading with ``weights_only=True``.

        Raises:
            FileNotFoundError: if ``path`` is not a file.
            ValueError: naming ``checkpoint`` if it is not a checkpoint of this model.
        """
        return cls.from_checkpoint_data(load_checkpoint_data(path), path)

    @classmethod
    def from_checkpoint_data(cls, data: dict[str, Any], path: str | Path) -> "PricePredictor":
        """:meth:`from_checkpoint` on a checkpoint already read by
        :func:`~gnnalloc.nn.load_checkpoint_data` (``path`` names it in errors)."""
        if data.get("format") is not None and data.get("model") != "prices":
            raise InputError(f"checkpoint: {str(path)!r} is not a price model (model: {data.get('model')!r})")
        model = rebuild_model(cls, data, path, cls.family_name, _SIZE_LIMITS, "price model")
        model.checkpoint_path = str(path)
        return model


def prices_from_logs(
    problem: ProblemTensors, server_log: Tensor, link_log: Tensor, references: tuple[Tensor, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Absolute prices ``(S,)``, ``(L,)`` as float64 arrays from the model's log-prices: relative
    prices below ``e^-LOG_FLOOR`` become 0, the rest are clamped to ``e^LOG_FLOOR``.
    ``references``: :func:`price_references` of ``problem`` if the caller has it."""
    server_ref, link_ref, _, _ = price_references(problem) if references is None else references
    out = []
    for log, ref in ((server_log, server_ref), (link_log, link_ref)):
        log = log.detach().to(torch.float64)
        price = torch.where(log > -LOG_FLOOR, ref * torch.exp(log.clamp(max=LOG_FLOOR)), 0.0)
        out.append(price.cpu().numpy())
    return out[0], out[1]
