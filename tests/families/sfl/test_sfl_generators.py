"""Layer tables computed from real architectures, and the random generator."""

from __future__ import annotations

import numpy as np
import pytest

from gnnalloc.families.sfl import ARCHITECTURES, layer_table, random_sfl, resnet18_blocks, vit_blocks
from gnnalloc.families.sfl._architectures import TRAINING_FACTOR


def test_resnet18_matches_its_published_size():
    # 11.17M parameters and 0.56 GMACs at 32x32 (CIFAR); 11.69M and 1.82 GMACs at 224x224.
    cifar, imagenet = resnet18_blocks(32, 10), resnet18_blocks(224, 1000)
    assert sum(b.params for b in cifar) == pytest.approx(11.17e6, rel=2e-3)
    assert sum(b.flops for b in cifar) / 2 == pytest.approx(0.556e9, rel=1e-2)
    assert sum(b.params for b in imagenet) == pytest.approx(11.69e6, rel=2e-3)
    assert sum(b.flops for b in imagenet) / 2 == pytest.approx(1.82e9, rel=1e-2)
    assert [b.outputs for b in cifar[:2]] == [64 * 32 * 32, 64 * 32 * 32]
    assert imagenet[0].outputs == 64 * 56 * 56


def test_vit_block_by_hand():
    blocks = vit_blocks(image=32, patch=4, width=192, depth=6)
    tokens, width = 65, 192
    block = blocks[1]
    assert block.outputs == tokens * width
    assert block.flops == 2 * tokens * width * 4 * width + 4 * tokens * tokens * width + 4 * tokens * width * 4 * width
    assert block.params == 12 * width * width + 13 * width
    assert len(blocks) == 8


def test_layer_table_splits_the_work():
    blocks, splits = ARCHITECTURES["resnet18-cifar"]()
    table = layer_table(blocks, splits)
    total = TRAINING_FACTOR * sum(b.flops for b in blocks)
    np.testing.assert_allclose(table["device_flops"] + table["server_flops"], total)
    assert (np.diff(table["device_flops"]) > 0).all()
    assert (np.diff(table["device_model_bits"]) > 0).all()
    np.testing.assert_array_equal(table["activation_bits"], table["gradient_bits"])
    assert table["activation_bits"][0] == 32 * 64 * 32 * 32


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_random_instances_are_valid_and_reproducible(architecture):
    a = random_sfl(50, 3, architecture=architecture)
    b = random_sfl(50, 3, architecture=architecture)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != random_sfl(50, 4, architecture=architecture).to_dict()
    distance_loss = -10 * np.log10(a.gain)
    # 128.1 + 37.6 log10(d_km) is 53 dB at 10 m and 117 dB at 500 m, before shadowing and fading.
    assert distance_loss.min() > 20 and distance_loss.max() < 200
    assert 95 < np.median(distance_loss) < 130
    assert ((a.cpu_max >= 5e8) & (a.cpu_max <= 2e9)).all()
    assert ((a.samples >= 16) & (a.samples <= 64)).all()


def test_sizes_and_settings_are_checked_by_name():
    assert random_sfl(1000, 0).num_clients == 1000
    for bad, name in ((dict(size=0), "clients"), (dict(size=5, seed=-1), "seed"), (dict(size=5, colour=1), "colour"),
                      (dict(size=5, architecture="lenet"), "architecture"), (dict(size=5, radius=-1.0), "radius"),
                      (dict(size=5, budget_low=3.0), "budget_low"), (dict(size=5, objective="max"), "objective"),
                      (dict(size=5, architecture=[1]), "architecture"), (dict(size=5, radius=1e308), "radius"),
                      (dict(size=5, shadowing_db=1e308), "shadowing_db"), (dict(size=5, cpu_high=1e308), "cpu_high"),
                      (dict(size=5, bandwidth=1e-300), "bandwidth")):
        with pytest.raises(ValueError, match=f"^{name}:"):
            random_sfl(**bad)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_generated_instances_fit_the_serving_ranges(architecture):
    from gnnalloc.families.sfl import FAMILY

    for size in (5, 1000):
        FAMILY.check_ranges(random_sfl(size, 0, architecture=architecture), FAMILY.value_ranges)


def test_every_setting_within_its_range_gives_a_valid_round():
    """The ranges' ends together (each setting at its least or largest value, a draw per round)
    still give rounds the format takes and the baselines allocate; a zero deviation may be -0.0."""
    from gnnalloc.core import solve
    from gnnalloc.families.sfl import FAMILY
    from gnnalloc.families.sfl._generators import SETTING_RANGES

    rng = np.random.default_rng(0)
    for seed in range(40):
        settings = {key: float(rng.choice(ends)) for key, ends in SETTING_RANGES.items()}
        for low, high in (("min_distance", "radius"), ("cpu_low", "cpu_high"), ("budget_low", "budget_high")):
            settings[low], settings[high] = sorted((settings[low], settings[high]))
        instance = random_sfl(3, seed, **settings)
        FAMILY.score(instance, solve(instance, "equal").allocation)
    assert random_sfl(3, 0, shadowing_db=-0.0).num_clients == 3
