"""Lightning shells for training the power allocator: a data module that samples instances from
the family's generators and a module whose loss is the negated mean utility per link.

Training is unsupervised: the loss is the utility the allocator's powers achieve, after the last
refinement step (and, weighted by ``start_weight``, at the encoder's start), averaged per link so
that instances of every size count alike, and divided per instance by the magnitude of its
utility at full power (at least 1, not differentiated): an α-fair instance deep in its penalty
region has utilities of -50 per link where a sum-rate instance has a few bits, and would
otherwise drown every other instance's gradient.

How the per-link values are combined is the ``fairness`` setting (a :class:`~gnnalloc.fairness.FairnessLoss`
configuration): by default the mean over instances (``objectives: instance``, ``aggregator: sum``),
the plain loss above; other objectives (per link, per link-strength quartile, the
efficiency-fairness pair) and aggregators (``mgda``, ``upgrad``, ``alpha_fair``) take their Gram
matrix with respect to the parameters, except per-link objectives, whose Gram is taken with
respect to the encoder's start :math:`q^{(0)}`, the last representation every parameter gradient
flows through (the refinement steps have no parameters): gradients of objectives on disjoint
links are orthogonal there, so for instance or group objectives that Gram would see no conflict.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError, check_count, check_fraction, check_nonnegative, check_positive
from gnnalloc.fairness import FairnessLoss
from gnnalloc.families.power._frame import frame_setting
from gnnalloc.families.power._frame_training import frame_average_rates
from gnnalloc.families.power._generators import d2d, gaussian
from gnnalloc.families.power._iterative import wmmse
from gnnalloc.families.power._graph import collate_link_graphs, instance_graph, link_batch
from gnnalloc.families.power._links import LinkBatch, graph_utility, link_rates, link_utility
from gnnalloc.families.power._model import FAMILY_NAME, PowerAllocator
from gnnalloc.ops import segment_mean
from gnnalloc.training import GraphList

__all__ = ["PowerDataModule", "PowerModule", "sample_power_instance", "strength_quartile"]

_UTILITIES = ("sum_rate", "alpha_fair")


def sample_power_instance(rng: np.random.Generator, links_min: int, links_max: int,
                          gaussian_share: float, fair_share: float):
    """One training instance: the Gaussian channel at 10 links with probability
    ``gaussian_share``, else a D2D layout of ``links_min..links_max`` links; the α-fair utility
    (alpha log-uniform in [0.5, 2], penalty log-uniform in [2, 50], minimum rates
    log-uniform in [0.05, 1] bits/s/Hz) with probability ``fair_share``, else sum rate."""
    seed = int(rng.integers(1 << 31))
    settings: dict[str, Any] = {}
    if rng.random() < fair_share:
        settings = {
            "utility": "alpha_fair",
            "alpha": float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
            "penalty": float(np.exp(rng.uniform(np.log(2.0), np.log(50.0)))),
            "rate_min": float(np.exp(rng.uniform(np.log(0.05), np.log(1.0)))),
        }
    if rng.random() < gaussian_share:
        return gaussian(10, seed, **settings)
    return d2d(int(rng.integers(links_min, links_max + 1)), seed, **settings)


class _Sampled(Dataset):
    """``length`` fresh instances per epoch, drawn from a generator seeded by epoch and index
    (reproducible, and never the same instance twice)."""

    def __init__(self, length: int, seed: int, **sampling: Any) -> None:
        self.length, self.seed, self.sampling, self.epoch = length, seed, sampling, 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> HeteroData:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return instance_graph(sample_power_instance(rng, **self.sampling))


class PowerDataModule(pl.LightningDataModule):
    """Training instances sampled afresh each epoch; a fixed validation set of held-out seeds.

    Args:
        train_instances: instances per epoch.
        batch_size: instances per step.
        links_min, links_max: D2D sizes for training.
        gaussian_share: share of Gaussian-channel instances (10 links).
        fair_share: share of α-fair instances.
        val_instances: validation instances (D2D at ``links_max`` links and Gaussian, sum rate).
        seed: seed of the training stream; validation uses disjoint seeds.
    """

    def __init__(
        self, train_instances: int = 2048, batch_size: int = 32, links_min: int = 20,
        links_max: int = 50, gaussian_share: float = 0.4, fair_share: float = 0.3,
        val_instances: int = 32, seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("train_instances", train_instances), ("links_max", links_max),
                            ("val_instances", val_instances), ("seed", seed)):
            check_count(name, value)
        for name, value in (("batch_size", batch_size), ("links_min", links_min)):
            check_count(name, value, minimum=1)
        for name, value in (("gaussian_share", gaussian_share), ("fair_share", fair_share)):
            check_fraction(name, value)
        if links_min > links_max:
            raise InputError(f"links_max: must be >= links_min, got {links_min!r}..{links_max!r}")
        self.save_hyperparameters()
        self.sampling = {"links_min": links_min, "links_max": links_max,
                         "gaussian_share": gaussian_share, "fair_share": fair_share}

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.train_set = _Sampled(hp.train_instances, hp.seed, **self.sampling)
        half = hp.val_instances // 2
        val_seed = 2_000_000_000 - hp.seed  # disjoint from the training stream's seeds
        instances = [gaussian(10, val_seed - i) for i in range(hp.val_instances - half)]
        instances += [d2d(hp.links_max, val_seed - i) for i in range(half)]
        graphs = []
        for instance in instances:
            graph = instance_graph(instance)
            # The classical reference's utility, for the validation ratio.
            reference = wmmse(instance).allocation.power / instance.pmax
            graph["link"].reference = torch.from_numpy(np.asarray(reference, dtype=np.float64))
            graphs.append(graph)
        self.val_set = GraphList(graphs)

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:
            self.train_set.epoch = self.trainer.current_epoch
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=False,
                          collate_fn=collate_link_graphs)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.val_instances,
                          collate_fn=collate_link_graphs)


def strength_quartile(links: LinkBatch) -> Tensor:
    """Group of each link for ``group`` objectives: the quartile (0 = weakest) of its direct
    channel's SNR within its own instance, ``(N,)`` long."""
    order = torch.argsort(links.snr, stable=True)
    order = order[torch.argsort(links.batch[order], stable=True)]
    count = torch.bincount(links.batch, minlength=links.num_graphs)
    start = torch.cumsum(count, 0) - count
    rank = torch.empty_like(links.batch)
    rank[order] = torch.arange(links.num_links, device=rank.device) - start[links.batch[order]]
    return torch.div(4 * rank, count[links.batch].clamp(min=1), rounding_mode="floor").clamp(max=3)


class PowerModule(pl.LightningModule):
    """Trains a :class:`PowerAllocator` to maximise the mean utility per link.

    Args:
        hidden, heads, layers, refine_steps, dropout: the allocator (see :class:`PowerAllocator`).
        start_weight: weight of the encoder's own powers in the loss (keeps the start itself
            meaningful instead of leaving everything to the refinement).
        lr, weight_decay: AdamW settings.
        gradient_clip: largest gradient norm.
        fairness: :class:`~gnnalloc.fairness.FairnessLoss` settings, e.g.
            ``{"objectives": "unit", "aggregator": "mgda"}``; default the mean over instances.
        step_utility: the allocator's ``step_utility`` (its refinement climbs that α-fair
            kernel of the rates whatever the instance's utility; the loss stays the instance's).
        rate_floor: the allocator's ``rate_floor`` (its answers are lifted to that minimum rate
            for all but a few links; inference only).
        frame_training: ``None`` (default), or ``{"slots": T, "fair_time": l, "alpha": a}``: train
            *through* the proportional-fair frame of ``T`` slots at ``fair_time`` ``l`` and slot
            weights of exponent ``a`` (:func:`~._frame_training.frame_average_rates`): the
            per-link values are the frame's average rates (refined, plus ``start_weight`` times
            those of the slots' starts), over the instance's mean rate at full power, whatever
            the instances' utility; every slot is a weighted sum rate. The answer
            to serve is then :func:`~._frame.proportional_fair_frame` with this allocator at the
            same settings (the method ``gnn_frame``).
        time_sharing: the allocator's time head (:meth:`PowerAllocator.fair_time`), trained
            through the frame: ``frame_training`` is then required and takes no ``fair_time``
            (each instance's is the head's).
    """

    def __init__(
        self, hidden: int = 64, heads: int = 4, layers: int = 3, refine_steps: int = 8,
        dropout: float = 0.0, start_weight: float = 0.2, lr: float = 5e-4,
        weight_decay: float = 0.0, gradient_clip: float = 1.0,
        fairness: dict[str, Any] | None = None, step_utility: dict[str, float] | None = None,
        rate_floor: dict[str, float] | None = None, frame_training: dict[str, Any] | None = None,
        time_sharing: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("start_weight", start_weight), ("weight_decay", weight_decay)):
            check_nonnegative(name, value)
        for name, value in (("lr", lr), ("gradient_clip", gradient_clip)):
            check_positive(name, value)
        self.fair = FairnessLoss(**(fairness or {}))
        # Not named "frame": Lightning's save_hyperparameters drops an argument of that name.
        if time_sharing is True and frame_training is None:
            raise InputError("time_sharing: the time head is trained through the frame: set frame_training too")
        self.frame = None if frame_training is None else frame_setting(frame_training, time_sharing is True)
        self.save_hyperparameters()
        self.model = PowerAllocator(hidden, heads, layers, refine_steps, dropout, step_utility, rate_floor,
                                    time_sharing, frame_training)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Export and the generic loaders find the family that rebuilds the model here.
        checkpoint["family"] = FAMILY_NAME

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip,
                            gradient_clip_algorithm="norm")

    def _per_link_utility(self, graph: HeteroData, q: Tensor) -> Tensor:
        links = link_batch(graph)
        counts = torch.bincount(links.batch, minlength=links.num_graphs).to(q.dtype)
        return graph_utility(links, q) / counts.clamp(min=1.0)

    def _scaled(self, final: Tensor, start: Tensor, scale: Tensor, links: LinkBatch) -> Tensor:
        """The per-link values the loss takes: ``final`` plus ``start_weight`` times ``start``,
        over each instance's ``scale``."""
        return (final + self.hparams.start_weight * start) / scale[links.batch]

    def _frame_values(self, batch: HeteroData) -> tuple[Tensor, Tensor, Tensor]:
        """The frame's average rates ``(final, start)`` and each instance's scale, the mean
        rate at full power (``frame_training``)."""
        links = link_batch(batch)
        slots, fair_time, alpha = self.frame
        if fair_time is None:
            fair_time = self.model.fair_time(batch)
            self.log("train/fair_time" if self.training else "val/fair_time", fair_time.detach().mean(),
                     batch_size=batch.num_graphs)
        final, start = frame_average_rates(self.model, batch, slots, fair_time, alpha)
        with torch.no_grad():
            # Rates in units of the instance's mean rate at full power: the efficiency term is
            # then about 1 on every instance and the log term's offset relative to it.
            full = link_rates(links, torch.ones_like(final))
            scale = segment_mean(full, links.batch, links.num_graphs).clamp(min=1e-12)
        return final, start, scale

    def training_step(self, batch: HeteroData, batch_idx: int) -> Tensor:
        links = link_batch(batch)
        if self.frame is None:
            shares = self.model(batch)
            final = link_utility(links, link_rates(links, shares[-1]))
            start = link_utility(links, link_rates(links, shares[0]))
            with torch.no_grad():
                scale = self._per_link_utility(batch, torch.ones_like(shares[-1])).abs().clamp(min=1.0)
        else:
            final, start, scale = self._frame_values(batch)
        counts = torch.bincount(links.batch, minlength=links.num_graphs).to(final.dtype)
        # Per link, normalised so that an instance's mean is its normalised utility per link.
        value = self._scaled(final, start, scale, links)
        # Per-link objectives: the Gram over q0 (MGDA-UB). Objectives of disjoint link sets
        # (instances, quartile groups) have orthogonal gradients in q0, which would hide every
        # conflict between them: those take the exact Gram over the parameters.
        # Through a frame every parameter reaches every instance's links: no per-instance blocks.
        per_link = self.fair.objectives == "unit" and self.frame is None
        inputs = [shares[0]] if per_link else [p for p in self.parameters() if p.requires_grad]
        loss, stats = self.fair(value, inputs, instance=links.batch, group=strength_quartile(links),
                                input_instance=links.batch if per_link else None)
        size = batch.num_graphs
        per_instance = lambda u: u.new_zeros(size).index_add(0, links.batch, u.detach()) / counts  # noqa: E731
        self.log("train/utility_per_link", per_instance(final).mean(), batch_size=size)
        self.log("train/start_utility_per_link", per_instance(start).mean(), batch_size=size)
        self.log_dict({f"train/fair_{k}": v for k, v in stats.items()}, batch_size=size)
        return loss.float()

    def validation_step(self, batch: HeteroData, batch_idx: int) -> None:
        links = link_batch(batch)
        utility = graph_utility(links, self.model.shares(batch))  # one inference, both figures
        reference = graph_utility(links, batch["link"].reference)
        size = batch.num_graphs
        counts = torch.bincount(links.batch, minlength=size).to(utility.dtype).clamp(min=1.0)
        self.log("val/utility_per_link", (utility / counts).mean(), batch_size=size)
        # Total utility as a share of WMMSE's (the "ratio to WMMSE"); monitored.
        self.log("val/wmmse_ratio", utility.sum() / reference.sum(), batch_size=size, prog_bar=True)
        if self.frame is not None:
            # What frame training optimises: its objectives on the frame, preference-weighted
            # (one power vector's ratio above does not see the time split).
            loss, _ = self.fair(self._scaled(*self._frame_values(batch), links), (), instance=links.batch,
                                group=strength_quartile(links))
            self.log("val/frame_objective", -loss, batch_size=size)
