"""The price model: shapes, references, checkpoint round trip and named errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.nn import PricePredictor, price_references
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers import solve_dual
from gnnalloc.families.edge.training.prices import log_price_targets, price_loss


def test_predicted_prices_are_finite_non_negative_and_sized():
    torch.manual_seed(0)
    instance = random_instance(40, 6, 1.0, 3, penalty=25.0, alpha=2.0)
    server, link = PricePredictor(hidden=16, heads=2, layers=1).predict(instance)
    assert server.shape == (instance.num_servers,) and link.shape == (instance.link_a.shape[0],)
    assert np.isfinite(server).all() and np.isfinite(link).all()
    assert (server > 0).all() and (link >= 0).all()


def test_a_prediction_from_given_water_filling_prices_is_the_same():
    from gnnalloc.families.edge.solvers.functional import waterfill_prices

    torch.manual_seed(0)
    model = PricePredictor(hidden=16, heads=2, layers=1)
    instance = random_instance(40, 6, 1.0, 3)
    water = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
    for own, given in zip(model.predict(instance), model.predict(instance, water)):
        np.testing.assert_array_equal(own, given)
    # They are the references the prices are relative to: doubled, every price doubles.
    for own, doubled in zip(model.predict(instance), model.predict(instance, 2.0 * water.numpy())):
        np.testing.assert_allclose(doubled, 2.0 * own, rtol=1e-12)
    with pytest.raises(ValueError, match=r"water_filling: expected shape"):
        model.predict(instance, water[:-1])
    with pytest.raises(ValueError, match="water_filling: every entry"):
        model.predict(instance, -water)


def test_on_dense_instances_the_model_reads_a_user_sample_in_the_whole_instances_units(monkeypatch):
    from gnnalloc.families.edge.nn import prices as module
    from gnnalloc.families.edge.problem import sample_users
    from gnnalloc.families.edge.solvers.functional import waterfill_prices

    torch.manual_seed(0)
    model = PricePredictor(hidden=16, heads=2, layers=1)
    instance = random_instance(120, 3, 1.0, 3)  # 40 users per server
    read = []
    real_prepare = model.prepare
    monkeypatch.setattr(model, "prepare", lambda instances: read.append(instances[0]) or real_prepare(instances))
    water = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
    # At least twice users_per_server per server: a sample of that many per server, whose
    # log-prices are relative to the whole instance's water-filling prices.
    sampled = model.predict(instance, users_per_server=20)
    assert read[-1].num_users == 60 and read[-1].num_servers == 3
    sample = sample_users(instance, 60)
    assert read[-1].user_ids == sample.user_ids
    graph, problem = real_prepare([sample])
    expected = module.prices_from_logs(
        problem, *model(graph, problem, price_references(problem, water)), price_references(problem, water),
    )
    for got, want in zip(sampled, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    for own, given in zip(sampled, model.predict(instance, water, users_per_server=20)):
        np.testing.assert_array_equal(own, given)
    # Fewer than twice as many per server, or None: every user.
    model.predict(instance, users_per_server=21)
    assert read[-1] is instance
    model.predict(instance, users_per_server=None)
    assert read[-1] is instance
    for bad in (0, -3, 2.5, "20"):
        with pytest.raises(ValueError, match="users_per_server"):
            model.predict(instance, users_per_server=bad)


def test_the_price_model_reads_servers_only_with_the_full_encoders_prices_and_gradients():
    torch.manual_seed(0)
    model = PricePredictor(hidden=16, heads=2, layers=2).eval()
    graph, problem = model.prepare([random_instance(60, 6, 1.2, 4)])
    evaluated = []
    for key, relation in model.encoder.layers[-1].relations.items():
        relation.register_forward_hook(lambda *_, key=key: evaluated.append(key))
    restricted = model(graph, problem)
    # The last layer's relations into users are skipped: only servers are read.
    assert evaluated and all(key.endswith("__server") for key in evaluated)
    full_server = model.encoder(graph)["server"]  # every relation of every layer evaluated
    assert torch.equal(model.server_head(full_server).squeeze(-1), restricted[0])
    grads = []
    for server_log in (restricted[0], model.server_head(full_server).squeeze(-1)):
        model.zero_grad(set_to_none=True)
        server_log.square().sum().backward(retain_graph=True)
        grads.append({n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        a, b = grads[0][name], grads[1][name]
        assert (a is None) == (b is None), name
        assert a is None or torch.equal(a, b), name


def test_references_are_positive_and_links_name_their_servers():
    instance = random_instance(60, 8, 1.2, 1)
    problem = ProblemTensors.from_instance(instance)
    server, link, ends, pressure = price_references(problem)
    assert bool((server > 0).all()) and bool((link > 0).all()) and bool(torch.isfinite(pressure).all())
    used = ends[0] >= 0
    pairs = {tuple(sorted(p)) for p in zip(instance.link_a.tolist(), instance.link_b.tolist())}
    for l in torch.nonzero(used).flatten().tolist():
        a, b = int(ends[0, l]), int(ends[1, l])
        assert (min(a, b), max(a, b)) == tuple(sorted((int(instance.link_a[l]), int(instance.link_b[l]))))
    assert pairs


def test_targets_recover_the_converged_prices():
    instance = random_instance(50, 6, 1.0, 2)
    result = solve_dual(instance, search_rounds=0, bound_iterations=0)
    problem = ProblemTensors.from_instance(instance)
    server_log, link_log, used = log_price_targets(
        problem, torch.from_numpy(result.server_price), torch.from_numpy(result.link_price)
    )
    from gnnalloc.families.edge.nn.prices import prices_from_logs

    server, link = prices_from_logs(problem, server_log, link_log)
    big = result.server_price > 1e-3 * result.server_price.max()
    np.testing.assert_allclose(server[big], result.server_price[big], rtol=1e-9)
    assert float(price_loss(server_log, link_log, server_log, link_log, used)) == 0.0


def test_checkpoint_round_trips(tmp_path):
    torch.manual_seed(1)
    model = PricePredictor(hidden=16, heads=2, layers=1)
    path = tmp_path / "prices.ckpt"
    model.save(path, note="x")
    loaded = PricePredictor.from_checkpoint(path)
    data = torch.load(path, weights_only=True)
    assert data["family"] == "edge" and data["model"] == "prices" and loaded.metadata["note"] == "x"
    instance = random_instance(30, 5, 1.0, 0)
    for a, b in zip(model.predict(instance), loaded.predict(instance)):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_errors_name_the_field(tmp_path):
    model = PricePredictor(hidden=16, heads=2, layers=1)
    data = model.checkpoint_dict()
    data["hyper_parameters"]["hidden"] = 2**40
    torch.save(data, tmp_path / "big.ckpt")
    with pytest.raises(ValueError, match="hyper_parameters.hidden"):
        PricePredictor.from_checkpoint(tmp_path / "big.ckpt")
    other = model.checkpoint_dict()
    other["family"] = "power"
    torch.save(other, tmp_path / "power.ckpt")
    with pytest.raises(ValueError, match="'power' family"):
        PricePredictor.from_checkpoint(tmp_path / "power.ckpt")
    shares = model.checkpoint_dict()
    shares["model"] = "shares"
    torch.save(shares, tmp_path / "shares.ckpt")
    with pytest.raises(ValueError, match="not a price model"):
        PricePredictor.from_checkpoint(tmp_path / "shares.ckpt")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        PricePredictor.from_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize("name, value", [("hidden", 0), ("heads", 3), ("layers", -1)])
def test_bad_sizes_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        PricePredictor(**{"hidden": 16, "heads": 2, "layers": 1, name: value})


def test_the_temperature_is_recorded_and_checked(tmp_path):
    assert PricePredictor(hidden=16, heads=2, layers=1).temperature == 0.03
    model = PricePredictor(hidden=16, heads=2, layers=1, temperature=0.01)
    model.save(tmp_path / "cold.ckpt")
    assert PricePredictor.from_checkpoint(tmp_path / "cold.ckpt").temperature == 0.01
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            PricePredictor(hidden=16, heads=2, layers=1, temperature=bad)
    data = model.checkpoint_dict()
    data["hyper_parameters"]["temperature"] = -0.5
    torch.save(data, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="hyper_parameters.temperature"):
        PricePredictor.from_checkpoint(tmp_path / "bad.ckpt")


def test_an_instance_without_links_is_priced():
    from dataclasses import replace

    instance = random_instance(30, 4, 1.0, 6)
    none = np.zeros(0, dtype=np.int64)
    lonely = replace(instance, link_a=none, link_b=none, link_capacity=np.zeros(0))
    server, link = PricePredictor(hidden=8, heads=1, layers=1).predict(lonely)
    assert server.shape == (4,) and link.shape == (0,) and np.isfinite(server).all()
