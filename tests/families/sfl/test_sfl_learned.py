"""The sfl learned method: the predictor, its checkpoints, the bisection from a guess, training."""

from __future__ import annotations

import dataclasses
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from gnnalloc.core import get_family
from gnnalloc.families.sfl import (
    client_shares, equal_allocation, max_violation, proportional_allocation, random_sfl, round_costs, solve_exact,
)
from gnnalloc.families.sfl._allocator import RoundTimePredictor
from gnnalloc.families.sfl._graph import SCHEMA, collate_graphs, instance_graph
from gnnalloc.families.sfl._relaxed import relaxed_round
from gnnalloc.families.sfl._model import cycles, fixed_time
from gnnalloc.families.sfl._learned import learned_allocation, solve_gnn
from gnnalloc.families.sfl._training import SflDataModule, SflModule
from gnnalloc.families.sfl._warm import solve_from_guess
from gnnalloc.training import export_checkpoint


@pytest.fixture(scope="module")
def model() -> RoundTimePredictor:
    torch.manual_seed(0)
    return RoundTimePredictor(hidden=16, heads=2, layers=1).eval()


def _max_latency(instance, allocation) -> float:
    return float(round_costs(instance, allocation).latency.max())


def test_graph_features_are_scale_free():
    instance = random_sfl(12, 3)
    graph = instance_graph(instance)
    assert graph["client"].x.shape == (12, SCHEMA.node_features["client"])
    assert bool(torch.isfinite(graph["client"].x).all()) and bool(torch.isfinite(graph["server"].x).all())
    # Every energy (budgets and kappa) and every time scaled alike: the same features.
    scaled = dataclasses.replace(instance, energy_max=instance.energy_max * 10.0, kappa=instance.kappa * 10.0,
                                 power_min=instance.power_min * 10.0, power_max=instance.power_max * 10.0,
                                 noise_psd=instance.noise_psd * 10.0)
    assert torch.allclose(instance_graph(scaled)["client"].x, graph["client"].x, atol=1e-5)
    assert relaxed_round(instance).round_time == pytest.approx(float(graph.scale))


@pytest.mark.parametrize("factor", [1e-6, 0.5, 1.0, 3.0, 1e6])
def test_bisection_from_any_guess_is_certified(factor):
    instance = random_sfl(20, 5)
    exact = solve_exact(instance)
    found = solve_from_guess(instance, exact.t_upper * factor, tolerance=1e-4)
    assert found.t_lower <= exact.t_upper <= found.t_upper * (1 + 1e-9)
    assert found.relative_gap <= 1e-4
    assert max_violation(instance, found.allocation) == 0.0
    assert _max_latency(instance, found.allocation) <= found.t_upper * (1 + 1e-9)
    # The lower end is proven infeasible (or is the compute floor, below which nobody finishes).
    if found.t_lower > exact.t_lower:
        assert client_shares(instance, found.t_lower).lower.sum() > 1.0
    # A good guess needs fewer round times than the cold bisection.
    if factor == 1.0:
        assert found.evaluations < exact.evaluations


@pytest.mark.parametrize("bad, field", [({"guess": math.nan}, "guess"), ({"guess": -1.0}, "guess"),
                                        ({"spread": 0.0}, "spread"), ({"tolerance": 1.0}, "tolerance")])
def test_bisection_names_bad_arguments(bad, field):
    settings = {"guess": 1.0, **bad}
    with pytest.raises(ValueError, match=field):
        solve_from_guess(random_sfl(4, 0), **settings)


@pytest.mark.parametrize("size, seed, architecture", [(1, 0, "resnet18-cifar"), (7, 1, "vit-cifar"),
                                                      (40, 2, "resnet18-imagenet"), (150, 3, "resnet18-cifar")])
def test_untrained_model_is_feasible_and_never_worse_than_the_baselines(model, size, seed, architecture):
    instance = random_sfl(size, seed, architecture=architecture)
    found = learned_allocation(model, instance)
    allocation = found.allocation
    assert max_violation(instance, allocation) == 0.0
    assert allocation.share.sum() <= 1.0
    assert ((allocation.cpu >= instance.cpu_min) & (allocation.cpu <= instance.cpu_max)).all()
    assert ((allocation.power >= instance.power_min) & (allocation.power <= instance.power_max)).all()
    mine = _max_latency(instance, allocation)
    for baseline in (equal_allocation, proportional_allocation):
        assert mine <= _max_latency(instance, baseline(instance)) * (1 + 1e-12)
    optimum = solve_exact(instance).t_upper
    assert mine <= optimum * (1 + 2e-3)


def test_gnn_method_through_the_family(model):
    family = get_family("sfl")
    assert family.methods["gnn"].kind == "learned"
    instance = random_sfl(15, 7)
    result = family.methods["gnn"].run(instance, allocator=model)
    assert result.method == "gnn" and result.upper_bound is not None
    # The bound is a proven-infeasible round time: no allocation has a shorter round.
    assert -result.upper_bound <= solve_exact(instance).t_upper
    report = family.score(instance, result.allocation, upper_bound=result.upper_bound)
    assert report.as_dict()
    with pytest.raises(ValueError, match="spread"):
        solve_gnn(instance, allocator=model, spread=-1.0)
    with pytest.raises(ValueError, match="objective"):
        solve_gnn(dataclasses.replace(instance, objective="weighted_sum"), allocator=model)


def test_checkpoint_round_trip_and_named_errors(model, tmp_path):
    path = tmp_path / "sfl.ckpt"
    model.save(path, note="test")
    loaded = RoundTimePredictor.from_checkpoint(path)
    assert loaded.metadata == {"note": "test"}
    graph = collate_graphs([instance_graph(random_sfl(n, n)) for n in (3, 9)])
    assert torch.equal(loaded(graph), model(graph))
    assert get_family("sfl").load_allocator(torch.load(path, weights_only=True), path).config() == model.config()
    data = model.checkpoint_dict()
    with pytest.raises(ValueError, match="'power' family"):
        RoundTimePredictor.from_checkpoint_data({**data, "family": "power"})
    with pytest.raises(ValueError, match="hyper_parameters.hidden"):
        RoundTimePredictor.from_checkpoint_data({**data, "hyper_parameters": {**data["hyper_parameters"], "hidden": 10**9}})
    broken = dict(data["state_dict"])
    key = next(iter(broken))
    broken[key] = torch.full_like(broken[key], math.nan)
    with pytest.raises(ValueError, match="not a finite tensor"):
        RoundTimePredictor.from_checkpoint_data({**data, "state_dict": broken})
    del broken[key]
    with pytest.raises(ValueError, match="missing"):
        RoundTimePredictor.from_checkpoint_data({**data, "state_dict": broken})
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        RoundTimePredictor.from_checkpoint(tmp_path / "absent.ckpt")


def test_a_few_training_steps_reduce_the_error_and_export(tmp_path):
    pl.seed_everything(0)
    data = SflDataModule(train_instances=24, val_instances=8, clients_min=3, clients_max=12, batch_size=8)
    module = SflModule(hidden=16, heads=2, layers=1, lr=5e-3)
    data.setup()
    batch = collate_graphs(data.val_set.items)
    with torch.no_grad():
        before = float((module.model(batch).double() - batch.target).abs().mean())
    trainer = pl.Trainer(max_steps=30, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, val_check_interval=15, check_val_every_n_epoch=None)
    trainer.fit(module, datamodule=data)
    with torch.no_grad():
        after = float((module.model.eval()(batch).double() - batch.target).abs().mean())
    assert np.isfinite(after) and after < before
    lightning = tmp_path / "last.ckpt"
    trainer.save_checkpoint(lightning)
    assert torch.load(lightning, weights_only=True)["family"] == "sfl"
    export_checkpoint(lightning, tmp_path / "sfl.ckpt")
    exported = RoundTimePredictor.from_checkpoint(tmp_path / "sfl.ckpt")
    assert torch.allclose(exported(batch), module.model(batch))


@pytest.mark.parametrize("size, seed", [(1, 0), (8, 1), (60, 2)])
def test_relaxed_round_is_a_proven_lower_bound(size, seed):
    instance = random_sfl(size, seed, architecture="vit-cifar" if seed % 2 else "resnet18-cifar")
    relaxed = relaxed_round(instance)
    exact = solve_exact(instance)
    assert relaxed.round_time <= exact.t_upper
    assert relaxed.share.sum() == pytest.approx(1.0, abs=1e-3) or size == 1
    # At the bound the real least shares do not fit the band (unless it is the compute floor).
    floor = (cycles(instance) / instance.cpu_max[:, None] + fixed_time(instance)).min(axis=1).max()
    if relaxed.round_time > floor:
        assert client_shares(instance, relaxed.round_time).share.sum() > 1.0


@pytest.mark.parametrize("size, seed", [(1, 4), (5, 5), (30, 6)])
def test_equal_floor_bounds_the_equal_baseline(size, seed):
    instance = random_sfl(size, seed, architecture="vit-cifar" if seed % 2 else "resnet18-cifar")
    floor = float(instance_graph(instance).equal_floor)
    assert floor <= _max_latency(instance, equal_allocation(instance)) * (1 + 1e-12)


def test_gnn_names_an_allocator_of_the_wrong_type():
    instance = random_sfl(3, 0)
    # Was an AttributeError traceback ('str' object has no attribute 'parameters').
    with pytest.raises(ValueError, match=r"^allocator: expected a RoundTimePredictor, got str"):
        get_family("sfl").methods["gnn"].run(instance, allocator="x")


def test_a_bad_dropout_is_named_before_training():
    from gnnalloc.core import InputError
    from gnnalloc.families.sfl._training import SflModule

    with pytest.raises(InputError, match="^dropout: "):
        SflModule(hidden=8, heads=2, layers=1, dropout=-1.0)
