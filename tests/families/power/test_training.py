"""Lightning shells of the power allocator: settings checked by name, a few real steps."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from gnnalloc.families.power._training import PowerDataModule, PowerModule


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"batch_size": 0}, "batch_size"), ({"fair_share": 1.5}, "fair_share"),
     ({"links_min": 60, "links_max": 50}, "links_max"), ({"train_instances": -1}, "train_instances")],
)
def test_data_settings_are_named(settings, field):
    with pytest.raises(ValueError, match=field):
        PowerDataModule(**settings)


@pytest.mark.parametrize(("settings", "field"), [({"lr": 0.0}, "lr"), ({"start_weight": -1.0}, "start_weight")])
def test_module_settings_are_named(settings, field):
    with pytest.raises(ValueError, match=field):
        PowerModule(**settings)


def test_a_few_steps_train_and_validate(tmp_path):
    torch.manual_seed(0)
    module = PowerModule(hidden=16, heads=2, layers=1, refine_steps=2)
    data = PowerDataModule(train_instances=8, batch_size=4, links_min=5, links_max=10, val_instances=4)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, enable_model_summary=False)
    trainer.fit(module, data)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/utility_per_link"])
    assert 0.0 < float(metrics["val/wmmse_ratio"]) < 2.0
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_fairness_setting_reaches_the_loss():
    from gnnalloc.families.power._graph import collate_link_graphs, instance_graph
    from gnnalloc.families.power import d2d

    module = PowerModule(hidden=8, heads=2, layers=1, refine_steps=2,
                         fairness={"objectives": "unit", "aggregator": "mgda"})
    assert (module.fair.objectives, module.fair.aggregator) == ("unit", "mgda")
    assert module.hparams.fairness == {"objectives": "unit", "aggregator": "mgda"}
    assert PowerModule().fair.objectives == "instance"  # default: the mean over instances
    graph = collate_link_graphs([instance_graph(d2d(6, s)) for s in range(2)])
    loss = module.training_step(graph, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    with pytest.raises(ValueError, match="aggregator"):
        PowerModule(fairness={"aggregator": "median"})


def test_step_utility_is_named_checked_and_recorded_only_when_set():
    from gnnalloc.families.power._model import PowerAllocator

    assert "step_utility" not in PowerAllocator(hidden=8, heads=2, layers=1).config()  # old checkpoints unchanged
    model = PowerModule(hidden=8, heads=2, layers=1, refine_steps=2, step_utility={"alpha": 0.5}).model
    assert model.config()["step_utility"] == {"alpha": 0.5, "minimum": 1e-6, "penalty": 1.0}
    again = PowerAllocator.from_checkpoint_data(model.checkpoint_dict())
    assert again.step_setting == (0.5, 1e-6, 1.0)
    for bad, field in (({"alpha": -0.1}, "alpha"), ({"minimum": float("nan")}, "minimum"),
                       ({"penalty": 0.5}, "penalty"), ({"alpha": True}, "alpha"), ({"beta": 1}, "step_utility"),
                       (1.0, "step_utility")):
        with pytest.raises(ValueError, match=field):
            PowerAllocator(hidden=8, heads=2, layers=1, step_utility=bad)


def test_rate_floor_is_checked_recorded_and_lifts_the_answer():
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._graph import instance_graph, link_batch
    from gnnalloc.families.power._links import link_rates
    from gnnalloc.families.power._model import PowerAllocator

    assert "rate_floor" not in PowerAllocator(hidden=8, heads=2, layers=1).config()
    torch.manual_seed(0)
    module = PowerModule(hidden=8, heads=2, layers=1, refine_steps=2, rate_floor={"rate": 0.01})
    model = module.model
    assert model.config()["rate_floor"] == {"rate": 0.01, "max_off": 0.05}
    again = PowerAllocator.from_checkpoint_data(model.checkpoint_dict())
    assert again.floor_setting == (0.01, 0.05)
    graph = instance_graph(d2d(40, 8))
    lifted = model.shares(graph)
    model.floor_setting = None
    plain = model.shares(graph)
    rates = link_rates(link_batch(graph), lifted)
    assert bool((lifted >= plain).all())
    # floor(0.05 * 39) = 1 link may stay below, and any that full power cannot lift
    assert int(((rates < 0.01 * (1 - 1e-6)) & (lifted < 1.0)).sum()) <= 1
    assert int((link_rates(link_batch(graph), plain) < 0.01).sum()) > 1  # the floor did something
    for bad, field in (({"rate": 0.0}, "rate"), ({"rate": 0.1, "max_off": 0.9}, "max_off"),
                       ({"max_off": 0.1}, "rate_floor"), ({"rate": True}, "rate"), (0.1, "rate_floor")):
        with pytest.raises(ValueError, match=field):
            PowerAllocator(hidden=8, heads=2, layers=1, rate_floor=bad)


def test_step_utility_replaces_the_instances_utility_in_the_steps():
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._graph import instance_graph, link_batch
    from gnnalloc.families.power._links import link_rates, link_utility, wmmse_step
    from gnnalloc.families.power._model import PowerAllocator
    from gnnalloc.core import resource_utility

    torch.manual_seed(0)
    graph = instance_graph(d2d(12, 3))  # a sum-rate instance
    links = link_batch(graph)
    model = PowerAllocator(hidden=8, heads=2, layers=1, refine_steps=2, step_utility={"alpha": 1.0, "minimum": 0.05})
    with torch.no_grad():
        shares = model(graph)
    q = shares[0]
    for _ in range(2):  # the same as a WMMSE step re-weighted by the kernel's slope at each rate
        rates = link_rates(links, q).requires_grad_(True)
        resource_utility(rates, 0.05, 1.0, 1.0).sum().backward()
        q = wmmse_step(links, q, weight=links.weight * rates.grad)
    torch.testing.assert_close(shares[-1], q)
    plain = wmmse_step(links, wmmse_step(links, shares[0]))
    assert not torch.allclose(plain, q)
    assert torch.equal(link_utility(links, link_rates(links, q)), link_rates(links, q))  # the instance is untouched


def test_proportional_fair_steps_keep_every_link_on_where_sum_rate_steps_switch_some_off():
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._graph import instance_graph, link_batch
    from gnnalloc.families.power._links import link_rates
    from gnnalloc.families.power._model import PowerAllocator

    torch.manual_seed(0)
    graph = instance_graph(d2d(40, 11))
    links = link_batch(graph)
    plain = PowerAllocator(hidden=8, heads=2, layers=1, refine_steps=4)
    fair = PowerAllocator(hidden=8, heads=2, layers=1, refine_steps=4, step_utility={"alpha": 1.0})
    fair.load_state_dict(plain.state_dict())
    sum_rate_rates = link_rates(links, plain.shares(graph, steps=200))
    fair_rates = link_rates(links, fair.shares(graph, steps=200))
    assert float(sum_rate_rates.min()) < 1e-3  # the sum-rate answer switches a weak link off
    assert float(fair_rates.min()) > 1e-3
    geo = lambda r: float(torch.log(r.clamp(min=1e-300)).mean())  # noqa: E731
    assert geo(fair_rates) > geo(sum_rate_rates)
    assert float(fair_rates.sum()) < float(sum_rate_rates.sum())  # fairness costs sum rate


@pytest.mark.parametrize("setting", [{"alpha": 1.0}, {"alpha": 0.5}, {"alpha": 2.0, "minimum": 0.05, "penalty": 10.0}])
def test_step_utility_answer_is_feasible_and_never_below_full_power_under_that_utility(setting):
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._graph import instance_graph, link_batch
    from gnnalloc.families.power._learned import allocate_powers
    from gnnalloc.families.power._links import graph_utility
    from gnnalloc.families.power._model import PowerAllocator, _step_links

    torch.manual_seed(0)
    model = PowerAllocator(hidden=8, heads=2, layers=1, refine_steps=2, step_utility=setting).eval()
    for seed in range(3):
        instance = d2d(25, seed)
        power = allocate_powers(model, instance).power
        assert (power > 0).all() and (power <= instance.pmax).all()
        links = _step_links(link_batch(instance_graph(instance)), model.step_setting)
        mine = float(graph_utility(links, torch.from_numpy(power / instance.pmax)).sum())
        full = float(graph_utility(links, torch.ones(instance.num_links, dtype=torch.float64)).sum())
        assert mine >= full - 1e-9 * abs(full)


def test_a_bad_dropout_is_named_before_training():
    from gnnalloc.core import InputError
    from gnnalloc.families.power._model import PowerAllocator

    with pytest.raises(InputError, match="^dropout: "):
        PowerAllocator(hidden=8, heads=2, layers=1, dropout=1.5)
