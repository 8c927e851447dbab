"""Training through the proportional-fair frame: the slot graphs are the slot instances' graphs,
the training frame is the served frame, gradients reach every slot and the time head, the time
head's fair_time is what gnn_frame serves, settings are named."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gnnalloc.core import solve
from gnnalloc.families.power import (
    DEFAULT_FAIR_TIME, PowerAllocation, d2d, frame_rates, frame_time_shares, gaussian, least_fair_time,
    proportional_fair_frame,
)
from gnnalloc.families.power._frame_training import frame_average_rates, slot_graph
from gnnalloc.families.power._graph import collate_link_graphs, instance_graph
from gnnalloc.families.power._learned import predicted_fair_time
from gnnalloc.families.power._model import PowerAllocator
from gnnalloc.families.power._training import PowerModule


def _model() -> PowerAllocator:
    torch.manual_seed(0)
    return PowerAllocator(hidden=16, heads=2, layers=2, refine_steps=3).double()


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_a_slot_graph_is_the_graph_of_the_slot_instance(utility):
    instances = [d2d(12, seed=1, utility=utility), gaussian(10, seed=2, utility=utility)]
    batch = collate_link_graphs([instance_graph(i) for i in instances])
    weights = [np.geomspace(0.3, 7.0, i.num_links) for i in instances]
    slot = slot_graph(batch, torch.from_numpy(np.concatenate(weights)))
    expected = collate_link_graphs([
        instance_graph(replace(i, utility="sum_rate", weight=w)) for i, w in zip(instances, weights)
    ])
    for key in ("x", "weight", "rate_min", "fair"):
        torch.testing.assert_close(slot["link"][key], expected["link"][key], rtol=1e-6, atol=0.0)
    # The batch is left alone.
    before = collate_link_graphs([instance_graph(i) for i in instances])
    for key in ("x", "weight", "rate_min", "fair"):
        assert torch.equal(batch["link"][key], before["link"][key])


def test_the_training_frame_is_the_frame_of_the_models_forward_answers():
    # (gnn_frame serves the frame of the model's inference, which refines more candidates.)
    model = _model()
    instances = [d2d(14, seed=3), d2d(9, seed=4), gaussian(10, seed=5)]
    batch = collate_link_graphs([instance_graph(i) for i in instances])
    with torch.no_grad():
        final, _ = frame_average_rates(model, batch, slots=4, fair_time=0.6, alpha=1.5)

    def allocate(slot):
        with torch.no_grad():
            return PowerAllocation(model(instance_graph(slot))[-1].numpy() * slot.pmax)

    served = np.concatenate([
        frame_rates(i, proportional_fair_frame(i, allocate, slots=4, alpha=1.5, fair_time=0.6)) for i in instances
    ])
    np.testing.assert_allclose(final.numpy(), served, rtol=1e-6, atol=1e-9)


def test_every_slot_carries_gradient_and_the_schedulers_weights_none():
    model = _model()
    graph = instance_graph(d2d(15, seed=6))
    seen = []
    forward = model.forward

    def spy(slot, *args, **kwargs):
        out = forward(slot, *args, **kwargs)
        out[-1].retain_grad()
        seen.append((slot["link"].weight, out[-1]))
        return out

    model.forward = spy
    final, start = frame_average_rates(model, graph, slots=3, fair_time=1.0)
    (final.sum() + start.sum()).backward()
    assert len(seen) == 3
    assert all(q.grad is not None and q.grad.abs().sum() > 0 for _, q in seen)
    assert not any(w.requires_grad for w, _ in seen)  # the weights steer the slots, they are not trained
    assert not torch.allclose(seen[1][0], seen[0][0])  # slot 2 asks other weights than slot 1


@pytest.mark.parametrize(("frame", "field"), [
    ({"slots": 0}, "frame_training.slots"), ({"slots": 1025}, "frame_training.slots"), ({"slots": 2.5}, "frame_training.slots"),
    ({"fair_time": 1.5}, "frame_training.fair_time"), ({"alpha": -1.0}, "frame_training.alpha"), ({"alpha": 1e9}, "frame_training.alpha"),
    ({"slot": 4}, "frame_training"), ([4], "frame_training"),
])
def test_frame_settings_are_named(frame, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        PowerModule(frame_training=frame)


def test_a_frame_trained_step_scores_the_frame():
    torch.manual_seed(0)
    fairness = {"objectives": "efficiency_fairness", "aggregator": "sum", "tradeoff": 0.5}
    batch = collate_link_graphs([instance_graph(d2d(12, seed=7)), instance_graph(gaussian(10, seed=8))])
    plain = PowerModule(hidden=16, heads=2, layers=1, refine_steps=2, fairness=fairness)
    framed = PowerModule(hidden=16, heads=2, layers=1, refine_steps=2, fairness=fairness,
                         frame_training={"slots": 3, "fair_time": 1.0})
    framed.load_state_dict(plain.state_dict())
    loss = framed.training_step(batch, 0)
    assert torch.isfinite(loss) and not torch.isclose(loss, plain.training_step(batch, 0))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in framed.parameters())
    assert framed.hparams.frame_training == {"slots": 3, "fair_time": 1.0}


def _timed_model() -> PowerAllocator:
    torch.manual_seed(0)
    return PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=2, time_sharing=True).eval()


def test_the_time_head_starts_at_the_default_fair_time_and_is_recorded():
    model = _timed_model()
    graphs = [instance_graph(d2d(12, seed=1)), instance_graph(gaussian(10, seed=2))]
    with torch.no_grad():
        together = model.fair_time(collate_link_graphs(graphs))
        alone = torch.cat([model.fair_time(g) for g in graphs])
    assert together.shape == (2,) and ((together > 0) & (together < 1)).all()
    torch.testing.assert_close(together, alone)  # each instance's own, batched or not
    assert float(together.mean()) == pytest.approx(DEFAULT_FAIR_TIME, abs=0.05)
    restored = PowerAllocator.from_checkpoint_data(model.checkpoint_dict())
    assert restored.time_sharing and model.hparams["time_sharing"] is True
    with torch.no_grad():
        torch.testing.assert_close(restored.fair_time(graphs[0]), alone[:1])
    assert "time_sharing" not in PowerAllocator(hidden=16, heads=2, layers=1).hparams  # older checkpoints unchanged
    with pytest.raises(ValueError, match="^time_sharing:"):
        PowerAllocator(hidden=16, heads=2, layers=1).fair_time(graphs[0])
    with pytest.raises(ValueError, match="^time_sharing:"):
        PowerAllocator(hidden=16, heads=2, layers=1, time_sharing="yes")


def test_a_per_instance_fair_time_mixes_each_instances_frame_and_trains_the_time_head():
    model = _model()
    instances = [d2d(14, seed=3), gaussian(10, seed=5)]
    batch = collate_link_graphs([instance_graph(i) for i in instances])
    with torch.no_grad():
        mixed, _ = frame_average_rates(model, batch, slots=3, fair_time=torch.tensor([0.2, 0.7]))
        each = [frame_average_rates(model, instance_graph(i), slots=3, fair_time=f)[0]
                for i, f in zip(instances, (0.2, 0.7))]
    torch.testing.assert_close(mixed, torch.cat(each))
    timed = _timed_model().double().train()
    final, _ = frame_average_rates(timed, batch, slots=3, fair_time=timed.fair_time(batch))
    final.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in timed.time_head.parameters())
    with pytest.raises(ValueError, match="^fair_time:"):
        frame_average_rates(model, batch, slots=3, fair_time=torch.tensor([0.2]))
    with pytest.raises(ValueError, match="^fair_time:"):
        frame_average_rates(model, batch, slots=3, fair_time=1.5)


def test_gnn_frame_takes_the_time_heads_fair_time_unless_one_is_given():
    model = _timed_model()
    instance = d2d(12, seed=9)
    predicted = predicted_fair_time(model, instance)
    answer = solve(instance, "gnn_frame", allocator=model, slots=4).allocation
    np.testing.assert_allclose(answer.time_share, frame_time_shares(4, predicted))
    given = solve(instance, "gnn_frame", allocator=model, slots=4, fair_time=0.5).allocation
    np.testing.assert_allclose(given.time_share, frame_time_shares(4, 0.5))
    np.testing.assert_allclose(given.power, answer.power)  # the same slots, other time shares
    plain = solve(instance, "gnn_frame", allocator=PowerAllocator(hidden=16, heads=2, layers=1), slots=4).allocation
    np.testing.assert_allclose(plain.time_share, frame_time_shares(4, DEFAULT_FAIR_TIME))
    # A rate target chooses the time split itself, head or not.
    aimed = solve(instance, "gnn_frame", allocator=model, slots=4, p5_rate=0.05).allocation
    np.testing.assert_allclose(aimed.time_share, frame_time_shares(4, least_fair_time(instance, answer, 0.05)))


def test_gnn_frame_serves_a_model_in_the_frame_it_was_trained_through(monkeypatch):
    torch.manual_seed(0)
    instance = d2d(10, seed=4)
    timed = PowerAllocator(hidden=16, heads=2, layers=1, time_sharing=True, frame_training={"slots": 3, "alpha": 2.0})
    answer = solve(instance, "gnn_frame", allocator=timed).allocation
    assert answer.slots == 3
    np.testing.assert_allclose(answer.time_share, frame_time_shares(3, predicted_fair_time(timed, instance)))
    fixed = PowerAllocator(hidden=16, heads=2, layers=1, frame_training={"slots": 4, "fair_time": 0.3})
    np.testing.assert_allclose(solve(instance, "gnn_frame", allocator=fixed).allocation.time_share,
                               frame_time_shares(4, 0.3))
    told = solve(instance, "gnn_frame", allocator=fixed, slots=2, fair_time=0.5).allocation
    np.testing.assert_allclose(told.time_share, frame_time_shares(2, 0.5))
    import gnnalloc.families.power._family as family

    seen = []
    served = family.solve_frame
    monkeypatch.setattr(family, "solve_frame", lambda *a, **k: seen.append(k) or served(*a, **k))
    solve(instance, "gnn_frame", allocator=timed)
    solve(instance, "gnn_frame", allocator=timed, alpha=1.0)
    assert [(k["slots"], k["alpha"]) for k in seen] == [(3, 2.0), (3, 1.0)]


def test_max_slots_bounds_the_frame_whoever_picks_its_slots():
    """A frame longer than ``max_slots`` is refused naming ``slots``, whether the request asks it
    or the model's recorded frame would run it; slots within the cap are served."""
    from gnnalloc.core import InputError

    torch.manual_seed(0)
    instance = d2d(6, seed=2)
    recorded = PowerAllocator(hidden=8, heads=2, layers=1, frame_training={"slots": 5})
    with pytest.raises(InputError, match="^slots: the model's frame of 5 slots is more than the 4 allowed"):
        solve(instance, "gnn_frame", allocator=recorded, max_slots=4)
    assert solve(instance, "gnn_frame", allocator=recorded, max_slots=5).allocation.slots == 5
    assert solve(instance, "gnn_frame", allocator=recorded, slots=2, max_slots=4).allocation.slots == 2
    for slots in (3, np.int64(3)):
        with pytest.raises(InputError, match="^slots: a frame of 3 slots is more than the 2 allowed"):
            solve(instance, "wmmse_frame", slots=slots, max_slots=2)
    with pytest.raises(InputError, match="^slots: a frame of 16 slots"):  # the default frame
        solve(instance, "wmmse_frame", max_slots=8)
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="^max_slots:"):
            solve(instance, "wmmse_frame", slots=2, max_slots=bad)


def test_a_lightning_checkpoint_rebuilds_the_time_head_and_its_frame():
    module = PowerModule(hidden=16, heads=2, layers=1, refine_steps=2, time_sharing=True,
                         frame_training={"slots": 5, "alpha": 0.5})
    data = {"family": "power", "hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    restored = PowerAllocator.from_checkpoint_data(data)
    assert restored.time_sharing and restored.frame_setting == (5, None, 0.5)
    graph = instance_graph(d2d(8, seed=1))
    with torch.no_grad():
        torch.testing.assert_close(restored.fair_time(graph), module.model.eval().fair_time(graph))
    again = PowerAllocator.from_checkpoint_data(restored.checkpoint_dict())
    assert again.frame_setting == (5, None, 0.5) and again.hparams["frame_training"] == {"slots": 5, "alpha": 0.5}


@pytest.mark.parametrize(("settings", "field"), [
    ({"time_sharing": True}, "time_sharing"),
    ({"time_sharing": True, "frame_training": {"slots": 4, "fair_time": 0.2}}, "frame_training"),
])
def test_time_sharing_settings_are_named(settings, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        PowerModule(**settings)


def test_a_time_sharing_step_trains_the_time_head():
    torch.manual_seed(0)
    module = PowerModule(hidden=16, heads=2, layers=1, refine_steps=2, time_sharing=True,
                         frame_training={"slots": 3},
                         fairness={"objectives": "efficiency_fairness", "tradeoff": 0.5, "fairness_term": "log"})
    batch = collate_link_graphs([instance_graph(d2d(12, seed=7)), instance_graph(gaussian(10, seed=8))])
    module.training_step(batch, 0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.time_head.parameters())


def test_per_link_objectives_train_through_the_frame():
    torch.manual_seed(0)
    module = PowerModule(hidden=8, heads=2, layers=1, refine_steps=1, fairness={"objectives": "unit", "aggregator": "mgda"},
                         frame_training={"slots": 2, "fair_time": 0.5})
    batch = collate_link_graphs([instance_graph(d2d(5, seed=7)), instance_graph(d2d(4, seed=8))])
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)


def test_validation_scores_the_frame_it_trains(tmp_path):
    import lightning.pytorch as pl

    from gnnalloc.families.power._training import PowerDataModule

    torch.manual_seed(0)
    module = PowerModule(hidden=8, heads=2, layers=1, refine_steps=1, time_sharing=True, frame_training={"slots": 2},
                         fairness={"objectives": "efficiency_fairness", "tradeoff": 0.1, "fairness_term": "log"})
    data = PowerDataModule(train_instances=4, batch_size=4, links_min=5, links_max=6, val_instances=4)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, enable_model_summary=False)
    trainer.fit(module, data)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["val/frame_objective"]) and 0 < float(metrics["val/fair_time"]) < 1
