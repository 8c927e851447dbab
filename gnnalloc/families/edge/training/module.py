"""The Lightning shell around the allocator: per-user losses, fairness backprop, AdamW, logging.

All the math lives in :mod:`gnnalloc.fairness`, :mod:`gnnalloc.metrics` and the model; this
module only wires them to Lightning's loop. Optimisation is manual because fairness
backpropagation computes its own gradient.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from gnnalloc.fairness import FairBackward, FairnessLoss, GramMode, Pullback, loss_decrease_share
from gnnalloc.families.edge.training._losses import per_user_loss
from gnnalloc.families.edge.metrics import batch_metrics
from gnnalloc.families.edge.nn.allocator import FAMILY_NAME, Allocator, Decisions
from gnnalloc.core import InputError, check_count, check_nonnegative, check_positive
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.projection import ProjectionJacobian
from gnnalloc.families.edge.solvers.functional import HomeRefillJacobian
from gnnalloc.families.edge.training.data import InstanceBatch

__all__ = ["AllocatorModule"]


def _pullbacks(out: Decisions, problem: ProblemTensors) -> tuple[Pullback, Pullback | None]:
    """The projection's Jacobian at the projected decisions and, when the allocator refilled the
    home pairs after it, the refill's Jacobian (both batched vector-Jacobian products)."""
    projected = out.projected_compute
    projection = ProjectionJacobian(problem, projected, out.bandwidth)
    if projected is out.compute:
        return projection, None
    return projection, HomeRefillJacobian(problem, projected)


class AllocatorModule(pl.LightningModule):
    """Train an :class:`~gnnalloc.families.edge.nn.allocator.Allocator` with fairness backpropagation.

    Args:
        hidden, heads, layers, dropout, max_metapath_neighbors, refill_home: the allocator's
            architecture (see :class:`~gnnalloc.families.edge.nn.allocator.Allocator`).
        train_through_refill: whether training steps see the home refill (validation, testing
            and the exported model always use ``refill_home``). Off by default: with the same
            time budget, a model trained on its projected output and refilled afterwards
            reached a lower gap than one trained through the refill (whose steps also cost
            more); see ``benchmarks/RESULTS.md``.
        fairness: Gram mode of per-user MGDA: ``output`` (default), ``exact`` (single process
            only) or ``sum``; or :class:`~gnnalloc.fairness.FairnessLoss` settings such as
            ``{"objectives": "instance", "aggregator": "upgrad"}``, whose Gram is the exact one over
            the parameters (one backward pass per objective: meant for per-instance, group or
            efficiency-fairness objectives, not per user).
        rescale: rescale the min-norm direction to the mean gradient's norm.
        stationary: at Pareto-stationary points step along the mean (``sum``) or not (``stop``).
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps, followed by cosine decay to 5 % over ``decay_steps``.
        decay_steps: length of the cosine decay.
        gradient_clip: max global gradient norm (0 disables).
        track_every_n_steps: every n global steps (0 = never), re-evaluate the batch after the
            step and log the share of users whose loss went down (``train/loss_decrease_share``,
            at that step; one extra forward). The learning rate is logged as ``train/lr``.
    """

    def __init__(
        self,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
        max_metapath_neighbors: int = 16,
        refill_home: bool = True,
        train_through_refill: bool = False,
        fairness: GramMode | dict[str, Any] = "output",
        rescale: bool = True,
        stationary: str = "sum",
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 50,
        decay_steps: int = 3000,
        gradient_clip: float = 1.0,
        track_every_n_steps: int = 10,
    ) -> None:
        super().__init__()
        check_positive("lr", lr)
        check_nonnegative("weight_decay", weight_decay)
        check_nonnegative("gradient_clip", gradient_clip)
        check_count("warmup_steps", warmup_steps)
        check_count("decay_steps", decay_steps)
        check_count("track_every_n_steps", track_every_n_steps)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = Allocator(
            hidden=hidden, heads=heads, layers=layers, dropout=dropout,
            max_metapath_neighbors=max_metapath_neighbors, refill_home=refill_home,
        )
        if isinstance(fairness, dict):
            # rescale and stationary are per-user MGDA's (FairBackward's): silently unused here.
            for name, value, default in (("rescale", rescale, True), ("stationary", stationary, "sum")):
                if value != default:
                    raise InputError(
                        f"{name}: applies to fairness output, exact or sum (per-user MGDA), not to "
                        "FairnessLoss settings, which take their own"
                    )
            self.fair: FairBackward | FairnessLoss = FairnessLoss(**fairness)
        else:
            self.fair = FairBackward(fairness, rescale=rescale, stationary=stationary)

    # ------------------------------------------------------------ plumbing
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Export and the generic loaders find the family that rebuilds the model here.
        checkpoint["family"] = FAMILY_NAME

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, InstanceBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        h = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=h.lr, weight_decay=h.weight_decay)

        def factor(step: int) -> float:
            if step < h.warmup_steps:
                return (step + 1) / max(h.warmup_steps, 1)
            progress = min((step - h.warmup_steps) / max(h.decay_steps, 1), 1.0)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_fit_start(self) -> None:
        if self.hparams.fairness == "exact" and self.trainer.world_size > 1:
            raise InputError("fairness: 'exact' sets gradients directly and cannot run under DDP; use 'output'")

    # ------------------------------------------------------------ steps
    def training_step(self, batch: InstanceBatch, batch_idx: int) -> Tensor:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        step = self.global_step  # the step Lightning logs this batch's metrics at
        lr = scheduler.get_last_lr()[0]
        problem = batch.problem
        refill = self.hparams.refill_home and self.hparams.train_through_refill
        out = self.model(batch.graph, problem, refill_home=refill)
        losses = per_user_loss(problem, out.compute, out.bandwidth)
        optimizer.zero_grad()
        if isinstance(self.fair, FairnessLoss):
            params = [p for p in self.parameters() if p.requires_grad]
            # Groups for `group` objectives: the users of each home server (home regions).
            # With references in the batch (data `train_reference`), objectives are regrets.
            loss, fair_stats = self.fair(-losses, params, instance=problem.user_graph,
                                         group=problem.user_server, baseline=batch.reference_utility)
            self.manual_backward(loss)
        else:
            pullback, inner = _pullbacks(out, problem) if self.fair.mode == "output" else (None, None)
            fair_stats = self.fair(
                losses, list(self.parameters()), compute=out.compute,
                bandwidth=out.bandwidth, pair_user=problem.pair_user, pullback=pullback, inner=inner,
                backward=self.manual_backward,
            ).as_dict("")
        if self.hparams.gradient_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm")
        optimizer.step()
        scheduler.step()

        batch_size = problem.num_graphs
        objective_per_weight = -losses.detach().sum() / problem.weight.sum()
        logs = {
            "train/loss": losses.detach().mean(), "train/utility_per_weight": objective_per_weight,
            "train/lr": lr,
        }
        logs.update({f"train/fair_{k}": v for k, v in fair_stats.items()})
        self.log_dict(logs, batch_size=batch_size, prog_bar=False)
        every = self.hparams.track_every_n_steps
        if every and step % every == 0:
            with torch.no_grad():
                after = self.model(batch.graph, problem, refill_home=refill)
                after_losses = per_user_loss(problem, after.compute, after.bandwidth)
            share = float(loss_decrease_share(losses.detach(), after_losses))
            # Straight to the loggers at this step: through self.log, Lightning would send the
            # value at its own log_every_n_steps cadence and repeat it at steps not measured.
            for logger in self.loggers:
                logger.log_metrics({"train/loss_decrease_share": share}, step=step)
        self.log("loss", losses.detach().mean(), prog_bar=True, batch_size=batch_size, logger=False)
        return losses.detach().mean()

    def _evaluate(self, batch: InstanceBatch, prefix: str) -> None:
        out = self.model(batch.graph, batch.problem)
        metrics = batch_metrics(batch.problem, out.compute, out.bandwidth, batch.reference_utility)
        logs = {f"{prefix}/{k}": v.mean() for k, v in metrics.items() if k != "max_violation"}
        self.log_dict(logs, batch_size=batch.problem.num_graphs, sync_dist=True)
        self.log(f"{prefix}/max_violation", metrics["max_violation"], reduce_fx="max", sync_dist=True,
                 batch_size=batch.problem.num_graphs)
        if "gap" in metrics:
            self.log(f"{prefix}/gap_max", metrics["gap"].max(), reduce_fx="max", sync_dist=True,
                     batch_size=batch.problem.num_graphs)

    def validation_step(self, batch: InstanceBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: InstanceBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
