"""Training data of the price model: temperature-consistent labels, heavy-tailed and diverse
variants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.solvers import solve_dual
from gnnalloc.families.edge.training.prices import (
    PriceConfig, diverse_variant, heavy_tailed_variant, label, sample_training_instances,
)


def test_heavy_tailed_variant_keeps_the_load_and_spreads_demands_and_weights():
    instance = random_instance(400, 40, 1.1, 3)
    variant = heavy_tailed_variant(instance, np.random.default_rng(0))
    for field in ("compute_min", "bandwidth_min"):
        old, new = getattr(instance, field), getattr(variant, field)
        assert new.sum() == pytest.approx(old.sum(), rel=1e-12)
        # Heavier tail: the largest demand is a larger multiple of the median.
        assert new.max() / np.median(new) > old.max() / np.median(old)
    assert 0.25 <= variant.weight.min() and variant.weight.max() <= 8.0
    assert variant.weight.max() / variant.weight.min() > 4.0  # wider than the generators' [0.5, 2]
    np.testing.assert_array_equal(variant.server_compute, instance.server_compute)
    np.testing.assert_array_equal(variant.user_server, instance.user_server)


def test_the_configured_fraction_of_training_instances_is_heavy_tailed():
    none = sample_training_instances(PriceConfig(users=(20, 40)), 6, seed=1)
    every = sample_training_instances(PriceConfig(users=(20, 40), heavy_tailed=1.0), 6, seed=1)
    light = [i.weight.max() <= 2.0 for i in none]
    heavy = [i.weight.max() <= 2.0 and i.weight.min() >= 0.5 for i in every]
    assert all(light) and not all(heavy)


def test_diverse_variant_keeps_the_load_and_users_and_redraws_the_generators_fixed_shapes():
    instance = random_instance(400, 40, 1.1, 3)
    variants = [diverse_variant(instance, np.random.default_rng(seed)) for seed in range(8)]
    for variant in variants:
        assert variant.server_compute.sum() == pytest.approx(instance.server_compute.sum(), rel=1e-12)
        assert variant.server_bandwidth.sum() == pytest.approx(instance.server_bandwidth.sum(), rel=1e-12)
        np.testing.assert_array_equal(variant.compute_min, instance.compute_min)
        np.testing.assert_array_equal(variant.weight, instance.weight)
        assert variant.link_a.shape[0] <= instance.link_a.shape[0]  # links are only dropped
        assert all(services for services in variant.server_services)  # every server hosts one
    # The spreads the generators fix now vary between instances (generators: C ~ U(20, 60), link
    # capacity U(0.1, 0.3) * mean(C), data rates U(0.2, 1)).
    spreads = [v.server_compute.std() / v.server_compute.mean() for v in variants]
    assert min(spreads) < 0.15 and max(spreads) > 0.45
    link_scales = [v.link_capacity.mean() / v.server_compute.mean() for v in variants]
    assert min(link_scales) < 0.1 and max(link_scales) > 0.3
    assert min(v.data_rate.min() for v in variants) < 0.2 and max(v.data_rate.max() for v in variants) > 1.0
    bandwidth_spreads = [v.server_bandwidth.std() / v.server_bandwidth.mean() for v in variants]
    assert min(bandwidth_spreads) < 0.15 and max(bandwidth_spreads) > 0.45  # generators: U(50, 150)
    assert any(v.server_services != instance.server_services for v in variants)
    homes = [np.bincount(v.user_server, minlength=40).max() for v in variants]
    assert max(homes) > np.bincount(instance.user_server, minlength=40).max()
    again = diverse_variant(instance, np.random.default_rng(3))  # the same generator state, the same draw
    np.testing.assert_array_equal(again.user_server, variants[3].user_server)


def test_the_configured_fraction_of_training_instances_is_diverse(monkeypatch):
    from gnnalloc.families.edge.training import prices

    calls = []
    real = prices.diverse_variant
    monkeypatch.setattr(prices, "diverse_variant", lambda instance, rng: calls.append(1) or real(instance, rng))
    sample_training_instances(PriceConfig(users=(20, 30), diverse=0.5), 40, seed=1)
    assert 10 <= len(calls) <= 30
    calls.clear()
    sample_training_instances(PriceConfig(users=(20, 30), diverse=1.0), 5, seed=1)
    assert len(calls) == 5


def test_without_diverse_the_training_instances_are_the_generators_draws_as_before():
    """``diverse = 0`` spends no random draw: a config without the key draws (and labels) the
    instances it drew before the key existed."""
    from gnnalloc.families.edge.training.data import log_uniform, sample_instance

    config = PriceConfig(users=(20, 60), heavy_tailed=0.5)
    rng = np.random.default_rng(4)
    expected = []
    for _ in range(6):
        instance = sample_instance(rng, "mixed", config.users, config.loads, config.users_per_server,
                                   log_uniform(rng, config.penalty), log_uniform(rng, config.alpha))
        expected.append(heavy_tailed_variant(instance, rng) if rng.random() < config.heavy_tailed else instance)
    for got, want in zip(sample_training_instances(config, 6, seed=4), expected, strict=True):
        assert got.to_dict() == want.to_dict()


def test_a_log_uniform_density_draws_as_many_sparse_as_dense_layouts():
    """Users per server drawn log-uniformly from [3, 48]: half the layouts below 12 (the
    geometric midpoint), where the uniform law puts a fifth; both stay in the range, and both
    take one draw, so the instances' other draws (here their sizes) are the same."""
    from gnnalloc.families.edge.training.data import sample_instance

    def draws(law: str) -> list:
        rng = np.random.default_rng(0)
        return [sample_instance(rng, "random", (180, 200), (1.0, 1.0), (3.0, 48.0), 10.0, 1.0, law)
                for _ in range(200)]

    uniform, log_uniform = draws("uniform"), draws("log-uniform")
    assert [i.num_users for i in uniform] == [i.num_users for i in log_uniform]
    for instances in (uniform, log_uniform):  # servers are rounded: densities within that rounding
        density = np.array([i.num_users / i.num_servers for i in instances])
        assert density.min() >= 3.0 * 0.95 and density.max() <= 48.0 * 1.15
        share_sparse = np.mean(density < 12.0)
        assert (0.4 <= share_sparse <= 0.6) if instances is log_uniform else (0.1 <= share_sparse <= 0.3)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="^users_per_server_law: must be one of uniform, log-uniform"):
        sample_instance(rng, "random", (20, 30), (1.0, 1.0), (3.0, 12.0), 10.0, 1.0, "normal")
    with pytest.raises(ValueError, match="^users_per_server: need 0 < low <= high"):
        sample_instance(rng, "random", (20, 30), (1.0, 1.0), (0.0, 12.0), 10.0, 1.0, "log-uniform")


def test_the_configured_density_law_reaches_the_sampler():
    from gnnalloc.families.edge.training.data import log_uniform, sample_instance

    config = PriceConfig(users=(20, 60), users_per_server=(3.0, 60.0), users_per_server_law="log-uniform")
    rng = np.random.default_rng(4)
    expected = []
    for _ in range(6):
        penalty, alpha = log_uniform(rng, config.penalty), log_uniform(rng, config.alpha)
        instance = sample_instance(rng, "mixed", config.users, config.loads, config.users_per_server,
                                   penalty, alpha, "log-uniform")
        rng.random()  # the heavy-tailed draw (a fraction of 0: never taken)
        expected.append(instance)
    got = sample_training_instances(config, 6, seed=4)
    assert [g.to_dict() for g in got] == [e.to_dict() for e in expected]
    uniform = sample_training_instances(dataclasses.replace(config, users_per_server_law="uniform"), 6, seed=4)
    assert [g.num_servers for g in got] != [u.num_servers for u in uniform]


def test_a_training_run_builds_the_configured_model(tmp_path):
    """The config's model settings reach the trained model and its summary."""
    from gnnalloc.families.edge.training.prices import train_prices

    config = PriceConfig(
        hidden=8, heads=2, layers=1, max_metapath_neighbors=0, train_instances=3, val_instances=1,
        users=(20, 30), users_per_server=(3.0, 30.0), users_per_server_law="log-uniform",
        label_iterations=30, max_epochs=1, batch_size=2, cache_dir=str(tmp_path), out=str(tmp_path / "m.ckpt"),
    )
    model, summary = train_prices(config)
    assert model.config()["max_metapath_neighbors"] == 0 and model.config()["hidden"] == 8
    assert summary["config"]["users_per_server_law"] == "log-uniform"
    assert np.isfinite(summary["val_log_price_mse"])


def test_diverse_variant_keeps_services_the_generators_do_not_draw():
    instance = random_instance(60, 6, 1.0, 2)
    custom = dataclasses.replace(
        instance, server_services=(None,) * 6, user_service=("transcode",) * 60,
    )
    variant = diverse_variant(custom, np.random.default_rng(0))
    assert variant.server_services == custom.server_services
    assert np.all(np.diff(variant.user_pair_ptr) >= 1)  # every user can still be served (at home)


def test_labels_are_the_dual_minimisers_at_the_configured_temperature(tmp_path):
    instance = random_instance(40, 6, 1.0, 4, penalty=10.0)
    cold = label(instance, 400, tmp_path, temperature=0.01)
    warm = label(instance, 400, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # one cache entry per temperature
    direct = solve_dual(instance, iterations=400, temperature=0.01, search_rounds=0, bound_iterations=0)
    np.testing.assert_array_equal(cold[0], direct.server_price)
    assert not np.allclose(cold[0], warm[0])
    np.testing.assert_array_equal(label(instance, 400, tmp_path, temperature=0.01)[0], cold[0])  # cached


def test_a_new_label_version_does_not_reuse_older_labels(tmp_path, monkeypatch):
    from gnnalloc.families.edge.training import prices

    instance = random_instance(30, 5, 1.0, 6)
    label(instance, 50, tmp_path, temperature=0.01)
    monkeypatch.setattr(prices, "LABEL_VERSION", prices.LABEL_VERSION + 1)
    label(instance, 50, tmp_path, temperature=0.01)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_label_appears_in_the_cache_only_whole(tmp_path, monkeypatch):
    """Two trainings sharing a cache: a reader must never find a half-written label."""
    from gnnalloc.families.edge.training import prices

    instance = random_instance(30, 5, 1.0, 6)
    real_savez = np.savez
    calls = []

    def savez(file, **arrays):
        real_savez(file, **arrays)
        # Written, not yet renamed: nothing under a name the cache reads.
        assert [p for p in tmp_path.iterdir() if not p.name.endswith(".partial.npz")] == []
        calls.append(file)

    monkeypatch.setattr(prices.np, "savez", savez)
    server, _ = label(instance, 200, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(calls) == 1 and len(files) == 1 and not files[0].name.endswith(".partial.npz")
    np.testing.assert_array_equal(np.load(files[0])["server"], server)


def test_an_interrupted_label_write_leaves_nothing_behind(tmp_path, monkeypatch):
    from gnnalloc.families.edge.training import prices

    def interrupted(file, **arrays):
        file.write(b"PK")  # a few bytes, then the interrupt
        raise KeyboardInterrupt

    monkeypatch.setattr(prices.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        label(random_instance(30, 5, 1.0, 6), 50, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("key", "value"), [
    ("diverse", "abc"), ("diverse", 2.0), ("heavy_tailed", -0.1), ("lr", 0.0), ("label_temperature", -1.0),
    ("hidden", 0), ("hidden", 31), ("heads", 100), ("layers", 40), ("batch_size", 2.5), ("seed", -1), ("users", [0, 5]), ("users", [50, 20]),
    ("users", [20.5, 40]), ("loads", 3), ("loads", [0.0, 1.0]), ("penalty", [0.5, 2.0]),
    ("alpha", [1.0, float("inf")]), ("users_per_server", [3.0]), ("out", ""), ("dual_weight", float("nan")),
    ("users_per_server_law", "normal"), ("users_per_server_law", None), ("max_metapath_neighbors", -1),
    ("max_metapath_neighbors", 5000),
])
def test_every_bad_setting_is_named_before_any_labelling(key, value):
    with pytest.raises(ValueError, match=f"^{key}: "):
        PriceConfig.from_dict({key: value})


@pytest.mark.parametrize(("text", "message"), [
    ("diverse: 1.5\n", "error: config: diverse: must be in [0, 1], got 1.5"),
    ("- hidden\n", "error: config: expected a mapping of settings, got a list"),
    ("hidden: [\n", "error: config: not YAML: "),
])
def test_the_training_command_reports_a_bad_config_in_one_line(tmp_path, capsys, text, message):
    from gnnalloc.families.edge.training.prices import main

    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["--config", str(config)]) == 2
    out = capsys.readouterr().out
    assert out.startswith(message) and out.count("\n") == 1


def test_the_shipped_price_model_was_trained_by_the_shipped_config():
    """`make train-edge` retrains `checkpoints/prices.ckpt` from `training/configs/edge-prices.yaml`:
    a config edited without retraining (or a checkpoint from another config) fails here."""
    from pathlib import Path

    import yaml

    from gnnalloc.families.edge._methods import default_checkpoint
    from gnnalloc.nn import load_checkpoint_data

    root = Path(__file__).resolve().parents[4]
    config = PriceConfig.from_dict(yaml.safe_load((root / "training/configs/edge-prices.yaml").read_text()))
    data = load_checkpoint_data(default_checkpoint())
    recorded = data["metadata"]["config"]
    wanted = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    assert recorded == wanted
    assert data["hyper_parameters"]["max_metapath_neighbors"] == config.max_metapath_neighbors
    assert data["hyper_parameters"]["temperature"] == config.label_temperature


def test_every_price_config_in_the_repository_is_a_valid_config():
    """The configs the README and RESULTS name (shipped and measured variants) load with every
    setting known and in range: a typo in one fails here, not after minutes of labelling."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[4]
    paths = sorted((root / "training/configs").glob("edge-prices*.yaml"))
    assert len(paths) >= 2
    for path in paths:
        config = PriceConfig.from_dict(yaml.safe_load(path.read_text()))
        assert config.out.startswith("checkpoints/"), path.name
