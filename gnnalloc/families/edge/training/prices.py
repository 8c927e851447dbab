r"""Training of :class:`~gnnalloc.families.edge.nn.PricePredictor`: supervised log-price regression
on converged dual prices (a functional core and a thin Lightning shell).

Labels are :func:`~gnnalloc.families.edge.solvers.solve_dual`'s prices at the smoothing
temperature ``label_temperature`` on library-generated instances
(:func:`~gnnalloc.families.edge.training.data.sample_instance`: EUA sub-regions and random
layouts, up to a few hundred users, penalty and alpha log-uniform; a fraction ``heavy_tailed`` of
them with demands redrawn from a Pareto law and weights log-uniform over a wider range,
:func:`heavy_tailed_variant`, and a fraction ``diverse`` with the generators' other fixed shapes
redrawn, :func:`diverse_variant`), cached on disk. The model records that temperature, and ``gnn``
refines its prediction at it: the start is then near the minimiser of the very smoothed dual
L-BFGS minimises (a start converged at another temperature is not). The
target of server :math:`s` is :math:`\ln(\max(\lambda^*_s, e^{-F}\lambda^0_s) / \lambda^0_s)`
(:math:`F` = :data:`~gnnalloc.families.edge.nn.prices.LOG_FLOOR`), and likewise for links, so a
zero price is a target at the floor; the loss is the mean squared error over servers and used
links. With ``dual_weight > 0`` the loss adds the label-free term of Dual Lagrangian Learning:
the smoothed dual :math:`D(\lambda, \mu)` at the predicted prices (an upper bound on the optimum
at any prices, so lowering it moves the prices towards the optimal ones), per unit of weight and
relative to its value at the labels (:func:`dual_excess`).

``python -m gnnalloc.families.edge.training.prices --config training/configs/edge-prices.yaml``
trains and writes the checkpoint named by ``out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from gnnalloc.core import InputError, check_count, check_fraction, check_nonnegative, check_positive, cut_message
from gnnalloc.families.edge.generators import SERVICES, hosted_services
from gnnalloc.families.edge.graph import DEFAULT_MAX_METAPATH_NEIGHBORS, build_graph, collate_graphs
from gnnalloc.families.edge.nn.prices import LOG_FLOOR, PricePredictor, check_model_settings, price_references
from gnnalloc.families.edge.problem import Instance, ProblemTensors
from gnnalloc.families.edge.solvers import check_temperature, smoothed_dual, solve_dual
from gnnalloc.families.edge.training.data import DensityLaw, check_density_law, log_uniform, sample_instance

__all__ = [
    "PriceConfig", "PriceModule", "diverse_variant", "dual_excess", "heavy_tailed_variant", "log_price_targets",
    "price_loss", "train_prices",
]


def log_price_targets(problem: ProblemTensors, server_price: Tensor, link_price: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The model's regression targets (module docstring): log-prices relative to
    :func:`~gnnalloc.families.edge.nn.price_references`, floored at ``-LOG_FLOOR``, ``(S,)``
    and ``(L,)``, and the mask of links some pair uses ``(L,)``."""
    server_ref, link_ref, ends, _ = price_references(problem)
    floor = math.exp(-LOG_FLOOR)
    server = torch.log(torch.maximum(server_price / server_ref, server_ref.new_tensor(floor)))
    link = torch.log(torch.maximum(link_price / link_ref, link_ref.new_tensor(floor)))
    return server.clamp(max=LOG_FLOOR), link.clamp(max=LOG_FLOOR), ends[0] >= 0


def price_loss(server_log: Tensor, link_log: Tensor, server_target: Tensor, link_target: Tensor, used: Tensor) -> Tensor:
    """Mean squared error of the log-prices over every server and every used link."""
    errors = torch.cat([server_log - server_target.to(server_log), (link_log - link_target.to(link_log))[used]])
    return errors.pow(2).mean()


def dual_excess(
    problem: ProblemTensors, server_log: Tensor, link_log: Tensor, server_target: Tensor, link_target: Tensor,
    temperature: float = 0.03,
) -> Tensor:
    """How far the smoothed dual at the predicted prices lies above its value at the labels, per
    unit of total weight (>= 0 up to the labels' own convergence; differentiable in the
    predictions)."""
    server_ref, link_ref, _, _ = price_references(problem)
    floor = math.exp(-LOG_FLOOR)

    def value(server_log: Tensor, link_log: Tensor) -> Tensor:
        server = server_ref * torch.exp(server_log.to(server_ref.dtype).clamp(-LOG_FLOOR, LOG_FLOOR))
        link = link_ref * torch.exp(link_log.to(link_ref.dtype).clamp(-LOG_FLOOR, LOG_FLOOR))
        link = torch.where(link > floor * link_ref, link, 0.0)
        return smoothed_dual(server, link, problem, temperature, reference_price=_reference(problem, server_ref))[0]

    with torch.no_grad():
        target = value(server_target, link_target)
    return (value(server_log, link_log) - target) / problem.weight.sum()


def _reference(problem: ProblemTensors, server_ref: Tensor) -> Tensor:
    """Each user's cheapest reference server price: the soft-min units ``solve_dual`` uses."""
    cheapest = server_ref.new_full((problem.num_users,), torch.inf).scatter_reduce_(
        0, problem.pair_user, server_ref.index_select(0, problem.pair_server), "amin"
    )
    return torch.where(torch.isfinite(cheapest), cheapest, 1.0)  # users without pairs: any unit


@dataclass
class PriceConfig:
    """Settings of one training run (the keys of ``training/configs/edge-prices.yaml``)."""

    hidden: int = 32
    heads: int = 2
    layers: int = 2
    max_metapath_neighbors: int = DEFAULT_MAX_METAPATH_NEIGHBORS
    train_instances: int = 400
    val_instances: int = 32
    users: tuple[int, int] = (20, 200)
    loads: tuple[float, float] = (0.4, 1.6)
    users_per_server: tuple[float, float] = (3.0, 12.0)
    users_per_server_law: DensityLaw = "uniform"
    penalty: tuple[float, float] = (1.0, 50.0)
    alpha: tuple[float, float] = (0.25, 4.0)
    label_iterations: int = 3000
    label_temperature: float = 0.03
    heavy_tailed: float = 0.0
    diverse: float = 0.0
    batch_size: int = 16
    lr: float = 0.003
    dual_weight: float = 0.0
    max_epochs: int = 60
    max_minutes: float = 8.0
    seed: int = 0
    cache_dir: str = ".cache/price-labels"
    out: str = "checkpoints/prices.ckpt"

    def __post_init__(self) -> None:
        """Every setting checked by name, before any labelling (a bad one is a ``ValueError``)."""
        # The model's own rules (sizes, hidden a multiple of heads), under the config's names.
        check_model_settings(hidden=self.hidden, heads=self.heads, layers=self.layers,
                             max_metapath_neighbors=self.max_metapath_neighbors)
        check_density_law("users_per_server_law", self.users_per_server_law)
        check_temperature("label_temperature", self.label_temperature)
        for name in ("train_instances", "val_instances", "label_iterations", "batch_size", "max_epochs"):
            check_count(name, getattr(self, name), minimum=1)
        check_count("seed", self.seed)
        for name in ("lr", "max_minutes"):
            check_positive(name, getattr(self, name))
        check_nonnegative("dual_weight", self.dual_weight)
        for name in ("heavy_tailed", "diverse"):  # fractions of the training instances
            check_fraction(name, getattr(self, name))
        for name, least in (("users", 1), ("loads", 0), ("users_per_server", 0), ("penalty", 1), ("alpha", 0)):
            _check_range(name, getattr(self, name), least, integral=name == "users")
        for name in ("cache_dir", "out"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InputError(f"{name}: must be a non-empty path, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PriceConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{unknown[0]}: not a setting of the price model's training")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def _check_range(name: str, bounds: object, least: float, integral: bool) -> None:
    """``bounds`` must be a pair ``(low, high)`` of finite numbers with ``least <= low <= high``
    (``least < low`` for ``least = 0``: the ranges are sampled log-uniformly or divide), integers
    if ``integral``."""
    kind = "integers" if integral else "finite numbers"
    if not isinstance(bounds, tuple) or len(bounds) != 2:
        raise InputError(f"{name}: expected a pair [low, high], got {bounds!r}")
    for value in bounds:
        if integral:
            check_count(name, value)
        else:
            check_positive(name, value)
    low, high = bounds
    if low < least or low > high:
        raise InputError(f"{name}: need {least:g} <= low <= high ({kind}), got {list(bounds)!r}")


def sample_training_instances(config: PriceConfig, count: int, seed: int) -> list[Instance]:
    """``count`` library-generated instances, half EUA sub-regions and half random layouts,
    penalty and alpha log-uniform in the configured ranges; a fraction ``config.diverse`` of them
    through :func:`diverse_variant`, then a fraction ``config.heavy_tailed`` through
    :func:`heavy_tailed_variant` (with ``diverse = 0`` no draw is spent on it, so the instances are
    those of a config without the key)."""
    rng = np.random.default_rng(seed)
    instances = []
    for _ in range(count):
        instance = sample_instance(rng, "mixed", config.users, config.loads, config.users_per_server,
                                   log_uniform(rng, config.penalty), log_uniform(rng, config.alpha),
                                   users_per_server_law=config.users_per_server_law)
        if config.diverse > 0 and rng.random() < config.diverse:
            instance = diverse_variant(instance, rng)
        instances.append(heavy_tailed_variant(instance, rng) if rng.random() < config.heavy_tailed else instance)
    return instances


def diverse_variant(instance: Instance, rng: np.random.Generator) -> Instance:
    r"""``instance``'s sites with the library generators' other fixed shapes redrawn, its load unchanged.

    The generators draw every instance from one shape: capacities uniform within a factor of 3,
    hot spots of one spread, mean degree about 4, links carrying a tenth to a third of a server,
    80 % of services hosted, data rates in ``[0.2, 1]``; a model trained on them alone sees no
    other. Here, with one draw per instance of each spread:

    * server compute and bandwidth: :math:`\text{LogNormal}(0, \sigma)`, :math:`\sigma \sim U(0, 1)`,
      rescaled to the old totals (so the load stays);
    * homes: redrawn with :math:`\text{LogNormal}(0, \sigma_h)` popularity, :math:`\sigma_h \sim U(0, 2)`;
    * links: each kept with probability :math:`U(0.5, 1)`; capacities :math:`m \cdot U(0.5, 1.5)`
      times the mean compute, :math:`m` log-uniform in ``[0.03, 1]``;
    * each service hosted with probability :math:`U(0.4, 1)` (at least one per server), where the
      instance uses only the generators' services (others are kept as they are);
    * data rates log-uniform in ``[r, 8 r]``, :math:`r` log-uniform in ``[0.05, 0.4]``.
    """
    servers, users = instance.num_servers, instance.num_users

    def spread(old: np.ndarray) -> np.ndarray:
        return _rescaled(rng.lognormal(0.0, rng.uniform(0.0, 1.0), servers), old)

    compute = spread(instance.server_compute)
    popularity = rng.lognormal(0.0, rng.uniform(0.0, 2.0), servers)
    kept = rng.random(instance.link_a.shape[0]) < rng.uniform(0.5, 1.0)
    scale = log_uniform(rng, (0.03, 1.0)) * float(compute.mean())
    services = hosted_services(rng.random((servers, len(SERVICES))) < rng.uniform(0.4, 1.0), rng)
    if not _generator_services(instance):  # services the generators do not draw: keep them
        services = instance.server_services
    low_rate = log_uniform(rng, (0.05, 0.4))
    return replace(
        instance,
        server_compute=compute,
        server_bandwidth=spread(instance.server_bandwidth),
        server_services=services,
        link_a=instance.link_a[kept],
        link_b=instance.link_b[kept],
        link_capacity=scale * rng.uniform(0.5, 1.5, int(kept.sum())),
        user_server=rng.choice(servers, size=users, p=popularity / popularity.sum()).astype(np.int64),
        data_rate=low_rate * np.exp(rng.uniform(0.0, math.log(8.0), users)),
    )


def _rescaled(raw: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``raw`` scaled to ``old``'s total (a redrawn quantity keeps the instance's load)."""
    return raw * (float(old.sum()) / float(raw.sum()))


def _generator_services(instance: Instance) -> bool:
    """Whether every server and user of ``instance`` names only the generators' :data:`SERVICES`
    (``None``, any service, is not one of their draws)."""
    known = set(SERVICES)
    return all(hosted is not None and hosted <= known for hosted in instance.server_services) and all(
        service is not None and service in known for service in instance.user_service
    )


def heavy_tailed_variant(instance: Instance, rng: np.random.Generator) -> Instance:
    r"""``instance`` with heavy-tailed demands and widely spread weights, its load unchanged.

    The library's generators draw light-tailed demands (``LogNormal(0, 0.5)``) and weights in
    ``[0.5, 2]``; a price model trained on them alone sees few servers that one huge user
    saturates. Here each user's compute and bandwidth minimum is redrawn as
    :math:`1 + \text{Pareto}(a)` with one shape :math:`a \sim U(1.2, 3)` per instance (smaller is
    heavier), rescaled to the old totals (so the load stays), and weights are log-uniform in
    ``[0.25, 8]``.
    """
    shape = float(rng.uniform(1.2, 3.0))
    users = instance.num_users

    def redraw(old: np.ndarray) -> np.ndarray:
        return _rescaled(rng.pareto(shape, users) + 1.0, old)

    return replace(
        instance,
        compute_min=redraw(instance.compute_min),
        bandwidth_min=redraw(instance.bandwidth_min),
        weight=np.exp(rng.uniform(math.log(0.25), math.log(8.0), users)),
    )


#: Part of every label's cache key: raise it when a change to ``solve_dual`` changes the prices it
#: converges to, or labels cached by the older solver are reused and a training run gives another
#: model than it would from an empty cache (version 2: one label of 848 cached by an earlier
#: solver differed by 1e-4 and changed the trained model).
LABEL_VERSION = 2


def label(
    instance: Instance, iterations: int, cache_dir: Path | None, temperature: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Converged dual prices of ``instance`` at ``temperature`` (cached by the instance's
    content, the settings and :data:`LABEL_VERSION`)."""
    settings = str(iterations) if temperature == 0.03 else f"{iterations}@{temperature!r}"
    settings += f"/v{LABEL_VERSION}"
    key = hashlib.sha256(json.dumps(instance.to_dict(), sort_keys=True).encode()
                         + settings.encode()).hexdigest()[:24]
    path = None if cache_dir is None else cache_dir / f"{key}.npz"
    if path is not None and path.is_file():
        data = np.load(path)
        return data["server"], data["link"]
    result = solve_dual(instance, iterations=iterations, temperature=temperature, search_rounds=0, bound_iterations=0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: two trainings sharing the cache never read half a file.
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".partial.npz")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, server=result.server_price, link=result.link_price)
            os.replace(name, path)
        except BaseException:  # an error or an interrupt leaves no partial file behind
            Path(name).unlink(missing_ok=True)
            raise
    return result.server_price, result.link_price


@dataclass
class _Example:
    graph: Any
    problem: ProblemTensors
    server_target: Tensor
    link_target: Tensor
    used: Tensor


def make_examples(instances: Sequence[Instance], config: PriceConfig, cap: int) -> list[_Example]:
    """Graphs, problems and targets of ``instances`` (labelling them if not cached)."""
    cache = Path(config.cache_dir) if config.cache_dir else None
    examples = []
    for instance in instances:
        server, link = label(instance, config.label_iterations, cache, config.label_temperature)
        problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
        targets = log_price_targets(problem, torch.from_numpy(server), torch.from_numpy(link))
        examples.append(_Example(build_graph(instance, max_metapath_neighbors=cap), problem, *targets))
    return examples


def _collate(items: Sequence[_Example]) -> _Example:
    if len(items) == 1:
        return items[0]
    return _Example(
        collate_graphs([e.graph for e in items]), ProblemTensors.collate([e.problem for e in items]),
        torch.cat([e.server_target for e in items]), torch.cat([e.link_target for e in items]),
        torch.cat([e.used for e in items]),
    )


class PriceModule(pl.LightningModule):
    """The Lightning shell: one :func:`price_loss` step per batch, Adam with cosine decay."""

    def __init__(self, model: PricePredictor, lr: float, total_steps: int, dual_weight: float = 0.0) -> None:
        super().__init__()
        self.model, self.lr, self.total_steps = model, lr, max(1, total_steps)
        self.dual_weight = dual_weight

    def _loss(self, batch: _Example) -> Tensor:
        server_log, link_log = self.model(batch.graph, batch.problem)
        loss = price_loss(server_log, link_log, batch.server_target, batch.link_target, batch.used)
        if self.dual_weight:
            excess = dual_excess(batch.problem, server_log, link_log, batch.server_target, batch.link_target,
                                 self.model.temperature)
            loss = loss + self.dual_weight * excess.to(loss.dtype)
        return loss

    def training_step(self, batch: _Example, batch_idx: int) -> Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, batch_size=1)
        return loss

    def validation_step(self, batch: _Example, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), batch_size=1)

    def transfer_batch_to_device(self, batch: _Example, device: torch.device, dataloader_idx: int) -> _Example:
        return _Example(batch.graph.to(device), batch.problem.to(device), batch.server_target.to(device),
                        batch.link_target.to(device), batch.used.to(device))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def train_prices(config: PriceConfig) -> tuple[PricePredictor, dict[str, Any]]:
    """Label, train and return the model with a summary (its checkpoint metadata)."""
    pl.seed_everything(config.seed, verbose=False)
    start = time.perf_counter()
    model = PricePredictor(config.hidden, config.heads, config.layers, config.max_metapath_neighbors,
                           temperature=config.label_temperature)
    cap = model.hparams["max_metapath_neighbors"]
    train = make_examples(sample_training_instances(config, config.train_instances, config.seed), config, cap)
    val = make_examples(sample_training_instances(config, config.val_instances, config.seed + 1), config, cap)
    labelled = time.perf_counter() - start
    loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, collate_fn=_collate)
    steps = config.max_epochs * len(loader)
    module = PriceModule(model, config.lr, steps, config.dual_weight)
    trainer = pl.Trainer(
        max_epochs=config.max_epochs, max_time={"minutes": config.max_minutes}, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        gradient_clip_val=1.0, accelerator="auto", devices=1,
    )
    trainer.fit(module, loader, DataLoader(val, batch_size=config.batch_size, collate_fn=_collate))
    model.eval()
    with torch.no_grad():
        val_loss = float(np.mean([
            price_loss(*model(e.graph, e.problem), e.server_target, e.link_target, e.used).item() for e in val
        ]))
    summary = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "val_log_price_mse": val_loss, "label_seconds": round(labelled, 1),
        "total_seconds": round(time.perf_counter() - start, 1), "epochs": trainer.current_epoch,
    }
    return model, summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gnnalloc.families.edge.training.prices --config FILE``."""
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    try:
        data = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(data, dict):
            raise InputError(f"expected a mapping of settings, got a {type(data).__name__}")
        config = PriceConfig.from_dict(data)
    except yaml.YAMLError as exc:  # its message spans lines (the offending line and a caret)
        print(f"error: config: not YAML: {cut_message(str(exc))}")
        return 2
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        print(f"error: config: {cut_message(str(exc))}")
        return 2
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, summary = train_prices(config)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(config.out, **summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
