import dataclasses

import numpy as np
import pytest

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.metrics import score
from gnnalloc.families.edge.problem import max_violation
from gnnalloc.core import solve
from gnnalloc.families.edge.solvers import equal_share, proportional_share, solve_exact


@pytest.mark.parametrize("baseline", [equal_share, proportional_share])
@pytest.mark.parametrize("make", [lambda: random_instance(300, 25, 1.4, 0), lambda: eua_instance(816, 0.6, 1)])
def test_feasible_and_worse_than_exact(baseline, make):
    inst = make()
    alloc = baseline(inst)
    assert max_violation(inst, alloc) <= 1e-12
    assert np.all(alloc.compute >= 0) and np.all(alloc.bandwidth >= 0)
    optimum = solve_exact(inst).allocation
    report = score(inst, alloc, optimum)
    assert report.gap > 0


def test_equal_share_splits_servers_equally(tiny_dict):
    from gnnalloc.families.edge.problem import Instance

    tiny_dict["links"] = []
    inst = Instance.from_dict(tiny_dict)
    alloc = equal_share(inst)
    # s1 hosts u2 only (u1 needs 'ar', s1 has only video): u2 gets all of s1's compute.
    assert alloc.compute[inst.pair_server == 1].tolist() == [5.0]
    # Bandwidth of s1 split between its two home users.
    assert alloc.bandwidth[[1, 2]].tolist() == [5.0, 5.0]


def test_proportional_follows_demand():
    inst = random_instance(50, 1, 1.0, 3)  # one server, no links
    alloc = proportional_share(inst)
    ratio = alloc.compute / inst.compute_min[inst.pair_user]
    assert np.allclose(ratio, ratio[0])


def test_zero_capacity_gives_zero():
    inst = random_instance(50, 5, 1.0, 4)
    inst = dataclasses.replace(inst, server_compute=np.zeros(5), server_bandwidth=np.zeros(5))
    for method in ("equal", "proportional"):
        alloc = solve(inst, method).allocation
        assert np.all(alloc.compute == 0) and np.all(alloc.bandwidth == 0)


def test_unknown_method():
    with pytest.raises(ValueError, match="method"):
        solve(random_instance(5, 2, 1.0, 0), "magic")
