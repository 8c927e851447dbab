"""Training the round-time predictor (:class:`RoundTimePredictor`) with Lightning.

Supervision comes from the certified solver: every training instance is solved once by
:func:`solve_exact` (to a relative bracket of ``label_tolerance``), and the model regresses
``log(T* / T_ref)`` with a squared loss. Instances are drawn by :func:`sample_sfl_instance`
(sizes log-uniform, so the small instances that make labels cheap do not crowd out the larger
ones); validation uses disjoint seeds.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError, check_count, check_nonnegative, check_positive
from gnnalloc.families.sfl._allocator import FAMILY_NAME, RoundTimePredictor
from gnnalloc.families.sfl._architectures import ARCHITECTURES
from gnnalloc.families.sfl._exact import solve_exact
from gnnalloc.families.sfl._generators import random_sfl
from gnnalloc.families.sfl._graph import collate_graphs, instance_graph
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.training import GraphList

__all__ = ["SflDataModule", "SflModule", "labelled_graph", "sample_sfl_instance"]


def sample_sfl_instance(rng: np.random.Generator, clients_min: int, clients_max: int) -> SflInstance:
    """One training instance of :func:`random_sfl`: ``clients_min..clients_max`` clients
    (log-uniform), a uniformly chosen architecture, band ``logU(5 MHz, 50 MHz)``, radius
    ``U(200, 1000)`` m, budget factors ``budget_low ~ U(0.1, 0.6)``, ``budget_high =
    budget_low + U(0.3, 1.5)``, server speed ``logU(3e11, 3e12)`` FLOP/s."""
    size = int(round(math.exp(rng.uniform(math.log(clients_min), math.log(clients_max + 0.499)))))
    low = float(rng.uniform(0.1, 0.6))
    settings = {
        "architecture": str(rng.choice(sorted(ARCHITECTURES))),
        "bandwidth": float(math.exp(rng.uniform(math.log(5e6), math.log(5e7)))),
        "radius": float(rng.uniform(200.0, 1000.0)),
        "budget_low": low, "budget_high": low + float(rng.uniform(0.3, 1.5)),
        "server_cpu": float(math.exp(rng.uniform(math.log(3e11), math.log(3e12)))),
    }
    return random_sfl(max(1, min(size, clients_max)), int(rng.integers(1 << 31)), **settings)


def labelled_graph(instance: SflInstance, tolerance: float = 1e-4) -> HeteroData:
    """The graph of ``instance`` with ``graph.target = log(T* / T_ref)`` from the exact solver."""
    graph = instance_graph(instance)
    optimum = solve_exact(instance, tolerance).t_upper
    graph.target = torch.tensor([math.log(optimum / float(graph.scale))], dtype=torch.float64)
    return graph


class SflDataModule(pl.LightningDataModule):
    """Labelled instances, solved once at setup.

    Args:
        train_instances: training instances (each solved exactly once).
        val_instances: validation instances (disjoint seeds).
        clients_min, clients_max: instance sizes.
        batch_size: instances per step.
        label_tolerance: the exact solver's relative bracket for the labels.
        seed: seed of the training instances.
    """

    def __init__(
        self, train_instances: int = 2000, val_instances: int = 64, clients_min: int = 5,
        clients_max: int = 100, batch_size: int = 32, label_tolerance: float = 1e-4, seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("train_instances", train_instances), ("val_instances", val_instances),
                            ("clients_min", clients_min), ("clients_max", clients_max),
                            ("batch_size", batch_size), ("seed", seed)):
            check_count(name, value)
        check_positive("batch_size", batch_size)
        check_positive("label_tolerance", label_tolerance)
        if not 1 <= clients_min <= clients_max:
            raise InputError(f"clients_max: must be >= clients_min >= 1, got {clients_min!r}..{clients_max!r}")
        self.save_hyperparameters()

    def _labelled(self, count: int, seed: int) -> list[HeteroData]:
        hp = self.hparams
        rng = np.random.default_rng(seed)
        return [labelled_graph(sample_sfl_instance(rng, hp.clients_min, hp.clients_max), hp.label_tolerance)
                for _ in range(count)]

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "train_set", None) is not None:
            return
        hp = self.hparams
        self.train_set = GraphList(self._labelled(hp.train_instances, hp.seed))
        self.val_set = GraphList(self._labelled(hp.val_instances, 2_000_000_000 - hp.seed))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          collate_fn=collate_graphs)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.val_instances, collate_fn=collate_graphs)


class SflModule(pl.LightningModule):
    """Trains a :class:`RoundTimePredictor` on ``log(T* / T_ref)`` (squared error).

    Args:
        hidden, heads, layers, dropout: the predictor.
        lr, weight_decay: AdamW settings.
        gradient_clip: largest gradient norm.
    """

    def __init__(
        self, hidden: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.0,
        lr: float = 2e-3, weight_decay: float = 1e-4, gradient_clip: float = 1.0,
    ) -> None:
        super().__init__()
        check_nonnegative("weight_decay", weight_decay)
        for name, value in (("lr", lr), ("gradient_clip", gradient_clip)):
            check_positive(name, value)
        self.save_hyperparameters()
        self.model = RoundTimePredictor(hidden, heads, layers, dropout)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Export and the generic loaders find the family that rebuilds the model here.
        checkpoint["family"] = FAMILY_NAME

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = self.trainer.max_steps if self.trainer is not None and self.trainer.max_steps > 0 else 10_000
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=0.05 * self.hparams.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm")

    def _errors(self, batch: HeteroData) -> Tensor:
        return self.model(batch).to(torch.float64) - batch.target.to(torch.float64)

    def training_step(self, batch: HeteroData, batch_idx: int) -> Tensor:
        error = self._errors(batch)
        loss = error.square().mean()
        self.log("train/log_mse", loss, batch_size=batch.num_graphs)
        return loss.float()

    def validation_step(self, batch: HeteroData, batch_idx: int) -> None:
        error = self._errors(batch).abs()
        size = batch.num_graphs
        # |log(T_hat / T*)|: the relative error of the guess the bisection starts from.
        self.log("val/log_error", error.mean(), batch_size=size, prog_bar=True)
        self.log("val/log_error_max", error.max(), batch_size=size)
