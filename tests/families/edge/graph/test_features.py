"""Node and edge features: the one-call form the builder uses, and the compressed ratio's edge
cases."""

from __future__ import annotations

import numpy as np
import pytest

from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.graph import (
    CANDIDATE_FEATURES,
    SERVER_FEATURES,
    build_graph,
    candidate_features,
    graph_features,
    link_features,
    server_features,
    user_features,
)
from gnnalloc.families.edge.graph._features import _l1p


@pytest.mark.parametrize("make", [
    lambda: eua_instance(300, load=1.3, seed=4),
    lambda: random_instance(80, 9, 0.7, seed=2),
    lambda: random_instance(1, 1, 1.0, seed=0),
])
def test_graph_features_equal_the_separate_ones(make):
    instance = make()
    together = graph_features(instance)
    apart = (user_features(instance), server_features(instance), candidate_features(instance),
             link_features(instance))
    for joint, alone in zip(together, apart):
        assert joint.dtype == np.float32
        np.testing.assert_array_equal(joint, alone)
    # A pair's server pressure is its server's home pressure (computed once for both).
    np.testing.assert_array_equal(
        together[2][:, CANDIDATE_FEATURES.index("server_pressure")],
        together[1][instance.pair_server, SERVER_FEATURES.index("home_compute_pressure")],
    )
    graph = build_graph(instance)
    np.testing.assert_array_equal(graph["user"].x.numpy(), together[0])
    np.testing.assert_array_equal(graph["server", "link", "server"].edge_attr.numpy(), together[3])


def _log_space(a, b, floor):
    """The same map as softplus of the log ratio (which never overflows): the reference."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(0.0, np.log(np.maximum(a, 0.0)) - np.log(np.maximum(b, floor)))


def test_l1p_matches_the_log_space_form_and_never_overflows():
    rng = np.random.default_rng(0)
    a = np.exp(rng.uniform(-700.0, 700.0, 4000))
    b = np.exp(rng.uniform(-700.0, 700.0, 4000))
    a[:50], b[50:100], a[100:110] = 0.0, 0.0, -3.0  # zeros, floored denominators, negatives
    a[110:120], b[110:120] = 1e308, 1e-300  # ratios that overflow at the floor 1e-12
    got, want = _l1p(a, b, 1e-12), _log_space(a, b, 1e-12)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0.0)
    assert (got[:50] == 0.0).all() and (got[100:110] == 0.0).all()
    assert got[110] == pytest.approx(np.log(1e308) - np.log(1e-12), rel=1e-15)  # b floored
    # Scalars on either side broadcast as before.
    np.testing.assert_allclose(_l1p(a[200:210], 3.0, 1e-9), _log_space(a[200:210], 3.0, 1e-9), rtol=1e-13)
    np.testing.assert_allclose(_l1p(2.0, b[200:210], 1e-9), _log_space(2.0, b[200:210], 1e-9), rtol=1e-13)
