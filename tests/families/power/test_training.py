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
