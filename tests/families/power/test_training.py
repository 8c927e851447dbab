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


def test_step_alpha_is_named_checked_and_recorded_only_when_set():
    from gnnalloc.families.power._model import PowerAllocator

    assert "step_alpha" not in PowerAllocator(hidden=8, heads=2, layers=1).config()  # old checkpoints unchanged
    model = PowerModule(hidden=8, heads=2, layers=1, refine_steps=2, step_alpha=0.5).model
    assert model.config()["step_alpha"] == 0.5
    again = PowerAllocator.from_checkpoint_data(model.checkpoint_dict())
    assert again.step_alpha == 0.5
    for bad in (-0.1, float("nan"), "1", True):
        with pytest.raises(ValueError, match="step_alpha"):
            PowerAllocator(hidden=8, heads=2, layers=1, step_alpha=bad)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="step_mix"):
            PowerAllocator(hidden=8, heads=2, layers=1, step_alpha=1.0, step_mix=bad)


def test_step_alpha_weights_are_the_slope_of_its_utility():
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._graph import instance_graph, link_batch
    from gnnalloc.families.power._links import link_rates
    from gnnalloc.families.power._model import _alpha_weights, alpha_rate_utility

    links = link_batch(instance_graph(d2d(12, 3)))
    q = torch.rand(links.num_links, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for alpha, mix in ((0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 0.1)):
        rates = link_rates(links, q).requires_grad_(True)
        (links.weight * alpha_rate_utility(rates, alpha, mix)).sum().backward()
        torch.testing.assert_close(rates.grad, _alpha_weights(links, q, alpha, mix))
    rates = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(alpha_rate_utility(rates, 1.0), torch.log(rates + 1e-6))


def test_proportional_fair_steps_keep_every_link_on_where_sum_rate_steps_switch_some_off():
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._graph import instance_graph, link_batch
    from gnnalloc.families.power._links import link_rates
    from gnnalloc.families.power._model import PowerAllocator

    torch.manual_seed(0)
    graph = instance_graph(d2d(40, 11))
    links = link_batch(graph)
    plain = PowerAllocator(hidden=8, heads=2, layers=1, refine_steps=4)
    fair = PowerAllocator(hidden=8, heads=2, layers=1, refine_steps=4, step_alpha=1.0)
    fair.load_state_dict(plain.state_dict())
    sum_rate_rates = link_rates(links, plain.shares(graph, steps=200))
    fair_rates = link_rates(links, fair.shares(graph, steps=200))
    assert float(sum_rate_rates.min()) < 1e-3  # the sum-rate answer switches a weak link off
    assert float(fair_rates.min()) > 1e-3
    geo = lambda r: float(torch.log(r.clamp(min=1e-300)).mean())  # noqa: E731
    assert geo(fair_rates) > geo(sum_rate_rates)
    assert float(fair_rates.sum()) < float(sum_rate_rates.sum())  # fairness costs sum rate
