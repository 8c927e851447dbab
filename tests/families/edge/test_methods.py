"""The edge family's ``gnn`` (learned prices + certified dual refinement) and ``gnn-shares``."""

from __future__ import annotations

import numpy as np
import pytest

from gnnalloc import solve
from gnnalloc.families.edge._methods import default_checkpoint, shares_checkpoint, shipped_allocator
from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.nn import Allocator, PricePredictor
from gnnalloc.families.edge.problem import max_violation


def _objective(instance, allocation) -> float:
    return float(user_utilities(instance, allocation).sum())


def test_gnn_uses_the_shipped_price_model_without_a_checkpoint():
    assert default_checkpoint().is_file() and isinstance(shipped_allocator(), PricePredictor)
    instance = random_instance(40, 6, 1.0, 5)
    result = solve(instance, "gnn")
    assert result.method == "gnn" and result.upper_bound is not None
    assert result.upper_bound >= _objective(instance, result.allocation) - 1e-9


@pytest.mark.parametrize(
    "instance",
    [
        random_instance(30, 5, 1.4, 0, penalty=25.0, alpha=2.0),
        random_instance(50, 8, 0.6, 1, penalty=2.0, alpha=0.5),
        eua_instance(60, 1.0, 2, sites=8, penalty=10.0, alpha=1.0),
    ],
    ids=["k25-a2", "k2-a0.5", "eua"],
)
@pytest.mark.parametrize("iterations", [0, 30])
def test_the_proven_bound_is_never_below_the_true_gap(instance, iterations):
    best = _objective(instance, solve(instance, "exact").allocation)
    result = solve(instance, "gnn", iterations=iterations)
    value = _objective(instance, result.allocation)
    assert value <= best + 1e-6 * max(1.0, abs(best))
    # upper_bound - value >= best - value: the proven gap covers the true gap.
    assert result.upper_bound >= best - 1e-6 * max(1.0, abs(best))


@pytest.mark.parametrize(("penalty", "gap_tol"), [(10.0, 0.005), (25.0, 0.02)])
def test_by_default_gnn_refines_until_its_bound_proves_the_default_gap(penalty, gap_tol):
    """Without options `gnn` is anytime: proven within `gnn_gap_tol` (0.005 up to penalty 10,
    0.02 above), and says so; `iterations` alone asks for one pass instead."""
    from gnnalloc.families.edge import gnn_gap_tol

    instance = eua_instance(200, 1.0, 3, penalty=penalty)
    assert gnn_gap_tol(instance) == gap_tol
    result = solve(instance, "gnn")
    weight = float(np.sum(instance.weight))
    proven = (result.upper_bound - _objective(instance, result.allocation)) / weight
    assert f"<= gap_tol {gap_tol:g}" in result.status and proven <= gap_tol + 1e-12, result.status
    one_pass = solve(instance, "gnn", iterations=30)
    assert "gap_tol" not in one_pass.status, one_pass.status


def test_a_time_limit_alone_bounds_gnn_s_time_not_its_aim(monkeypatch):
    """With time_limit (and iterations) but no gap_tol, gnn still aims at its default gap; only
    gap_tol=0 refines until the limit."""
    import gnnalloc.families.edge._methods as methods

    seen = []
    original = methods.solve_dual

    def spy(instance, **options):
        seen.append((options.get("gap_tol"), options.get("time_limit"), options["iterations"]))
        return original(instance, **options)

    monkeypatch.setattr(methods, "solve_dual", spy)
    instance = random_instance(40, 6, 1.0, 5, penalty=25.0)
    solve(instance, "gnn", time_limit=30.0)
    solve(instance, "gnn", time_limit=30.0, iterations=7)
    solve(instance, "gnn", time_limit=1.0, gap_tol=0.0)
    assert seen == [(0.02, 30.0, methods.GNN_FIRST_CHUNK), (0.02, 30.0, 7), (0.0, 1.0, methods.GNN_FIRST_CHUNK)]


def test_gnn_refinement_options_state_gnn_s_defaults():
    """What gnn hands solve_dual besides the start: anytime to gnn_gap_tol at the model's
    temperature (dual's above GNN_MODEL_TEMPERATURE_MAX_PENALTY), links cleared; one pass at
    dual's temperature when only iterations are given; given options win."""
    from gnnalloc.families.edge import _methods as methods
    from gnnalloc.families.edge.solvers import DEFAULT_TEMPERATURE

    model = shipped_allocator()
    low, high = random_instance(40, 6, 1.0, 5, penalty=10.0), random_instance(40, 6, 1.0, 5, penalty=25.0)
    assert methods.gnn_refinement_options(model, low) == {
        "iterations": methods.GNN_FIRST_CHUNK, "search_rounds": 5, "temperature": model.temperature,
        "clear_start_links": True, "gap_tol": methods.GNN_GAP_TOL, "cold_temperature": DEFAULT_TEMPERATURE,
    }
    assert methods.gnn_refinement_options(model, high)["temperature"] == DEFAULT_TEMPERATURE
    assert methods.gnn_refinement_options(model, high)["gap_tol"] == methods.GNN_HIGH_PENALTY_GAP_TOL
    assert methods.gnn_refinement_options(model, low, iterations=7) == {
        "iterations": 7, "search_rounds": 5, "temperature": DEFAULT_TEMPERATURE, "clear_start_links": True,
    }
    given = methods.gnn_refinement_options(
        model, low, search_rounds=0, bound_iterations=3, temperature=0.02, gap_tol=0.01, time_limit=2.0,
    )
    assert {k: given[k] for k in ("search_rounds", "bound_iterations", "temperature", "gap_tol", "time_limit")} == {
        "search_rounds": 0, "bound_iterations": 3, "temperature": 0.02, "gap_tol": 0.01, "time_limit": 2.0,
    }


def test_gnn_refines_with_gnn_refinement_options(monkeypatch):
    from gnnalloc.families.edge import _methods as methods

    seen = []
    original = methods.solve_dual

    def spy(instance, **options):
        seen.append({k: v for k, v in options.items() if k not in ("start", "water_filling")})
        return original(instance, **options)

    monkeypatch.setattr(methods, "solve_dual", spy)
    instance = random_instance(40, 6, 1.0, 5)
    for options in (
        {}, {"iterations": 7}, {"time_limit": 30.0, "search_rounds": 1},
        {"gap_tol": 0.01, "temperature": 0.02, "bound_iterations": 3},
    ):
        solve(instance, "gnn", **options)
        assert seen[-1] == methods.gnn_refinement_options(shipped_allocator(), instance, **options)


def test_gnn_answers_with_gnn_refine_s_solve():
    """gnn_refine is gnn's solve: the same allocation and bound, and the dual's own record (the
    iterations) besides; gnn's options reach it."""
    import numpy as np

    from gnnalloc.families.edge import gnn_refine

    instance = random_instance(40, 6, 1.0, 5)
    for options in ({}, {"iterations": 7}):
        answer = solve(instance, "gnn", **options)
        refined = gnn_refine(shipped_allocator(), instance, **options)
        np.testing.assert_array_equal(answer.allocation.compute, refined.allocation.compute)
        np.testing.assert_array_equal(answer.allocation.bandwidth, refined.allocation.bandwidth)
        assert answer.upper_bound == refined.upper_bound
    assert refined.iterations == 7


def test_more_iterations_do_not_worsen_the_answer_much():
    instance = random_instance(80, 10, 1.0, 7)
    few = _objective(instance, solve(instance, "gnn", iterations=0).allocation)
    many = _objective(instance, solve(instance, "gnn", iterations=300).allocation)
    assert many >= few - 1e-3 * abs(few)


def test_share_head_models_stay_reachable():
    instance = random_instance(30, 5, 1.0, 2)
    shares = solve(instance, "gnn-shares")
    assert shares.method == "gnn-shares" and shares_checkpoint().is_file()
    legacy = solve(instance, "gnn", checkpoint=shares_checkpoint())
    assert legacy.method == "gnn"


def test_named_errors():
    instance = random_instance(20, 4, 1.0, 0)
    with pytest.raises(ValueError, match="iterations"):
        solve(instance, "gnn", iterations=-1)
    with pytest.raises(ValueError, match="allocator"):
        solve(instance, "gnn-shares", allocator=PricePredictor(hidden=8, heads=1, layers=1))
    shares = Allocator.from_checkpoint(shares_checkpoint())
    for name, value in (("iterations", 5), ("gap_tol", 0.01), ("temperature", 0.1), ("bound_iterations", 3)):
        with pytest.raises(ValueError, match=f"^{name}: a share-head model"):
            solve(instance, "gnn", allocator=shares, **{name: value})
    # A share-head model answers in one pass: a time limit is accepted (callers bound every
    # learned method alike).
    assert solve(instance, "gnn", allocator=shares, time_limit=5.0).method == "gnn"
    with pytest.raises(ValueError, match="^time_limit"):
        solve(instance, "gnn", allocator=shares, time_limit=-1.0)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        solve(instance, "gnn", checkpoint="/nonexistent/prices.ckpt")
    # An allocator that is no edge model, or given beside a checkpoint (which was ignored).
    with pytest.raises(ValueError, match="^allocator: gnn needs a PricePredictor"):
        solve(instance, "gnn", allocator="prices.ckpt")
    for method in ("gnn", "gnn-shares"):
        with pytest.raises(ValueError, match="^checkpoint: give a checkpoint or an allocator, not both"):
            solve(instance, method, allocator=shares, checkpoint="/nonexistent/prices.ckpt")
    with pytest.raises(ValueError, match="^device: "):
        solve(instance, "dual", device="cuda:99")
    # The price model's checkpoint given to gnn-shares: said so (was "state_dict lacks ...").
    with pytest.raises(ValueError, match="^checkpoint: .* holds a price model"):
        solve(instance, "gnn-shares", checkpoint=str(default_checkpoint()))


def test_gnn_solves_anytime_to_a_proven_gap():
    instance = random_instance(60, 8, 1.0, 4, penalty=10.0)
    result = solve(instance, "gnn", gap_tol=0.01, time_limit=60.0)
    gap = (result.upper_bound - _objective(instance, result.allocation)) / float(instance.weight.sum())
    assert gap <= 0.01 + 1e-9 or "exact" in result.status
    assert "gap_tol" in result.status  # the anytime path ran and says where it stopped
    with pytest.raises(ValueError, match="gap_tol"):
        solve(instance, "gnn", gap_tol=-1.0)
    with pytest.raises(ValueError, match="time_limit"):
        solve(instance, "gnn", time_limit=0.0)


def test_gnn_refines_anytime_at_the_models_own_temperature_up_to_a_penalty(monkeypatch):
    import gnnalloc.families.edge._methods as methods

    seen = []
    real = methods.solve_dual

    def spy(instance, **options):
        seen.append(options["temperature"])
        return real(instance, **options)

    monkeypatch.setattr(methods, "solve_dual", spy)
    instance = random_instance(30, 5, 1.0, 2)
    model = PricePredictor(hidden=8, heads=1, layers=1, temperature=0.01)
    assert solve(instance, "gnn", allocator=model, gap_tol=0.5).upper_bound is not None
    assert seen[-1] == 0.01  # anytime: the model's temperature
    solve(instance, "gnn", allocator=model, iterations=20)
    assert seen[-1] == 0.03  # one pass: dual's default
    solve(instance, "gnn", allocator=model, iterations=20, temperature=0.02, gap_tol=0.5)
    assert seen[-1] == 0.02
    # Above the penalty limit the anytime solve keeps dual's temperature, as its one pass does.
    steep = random_instance(30, 5, 1.0, 2, penalty=methods.GNN_MODEL_TEMPERATURE_MAX_PENALTY + 5)
    solve(steep, "gnn", allocator=model, gap_tol=0.5)
    assert seen[-1] == 0.03
    at_limit = random_instance(30, 5, 1.0, 2, penalty=methods.GNN_MODEL_TEMPERATURE_MAX_PENALTY)
    solve(at_limit, "gnn", allocator=model, gap_tol=0.5)
    assert seen[-1] == 0.01


def test_gnn_anytime_solves_as_dual_wherever_its_prediction_is_not_used(monkeypatch):
    import gnnalloc.families.edge._methods as methods

    seen = []
    real = methods.solve_dual

    def spy(instance, **options):
        seen.append(options.get("cold_temperature"))
        return real(instance, **options)

    monkeypatch.setattr(methods, "solve_dual", spy)
    instance = random_instance(30, 5, 1.0, 2)
    model = PricePredictor(hidden=8, heads=1, layers=1, temperature=0.01)
    solve(instance, "gnn", allocator=model, gap_tol=0.5)
    # A prediction not used (rejected, stuck or stalled) gives way to dual's own cold solve.
    assert seen[-1] == methods.DEFAULT_TEMPERATURE
    solve(instance, "gnn", allocator=model, iterations=20)
    assert seen[-1] is None  # one pass: the model's temperature is not used there


@pytest.mark.parametrize("options", [{}, {"gap_tol": 0.005}])
def test_the_shipped_gnn_is_feasible_and_finite_on_edge_cases(edge_case, options):
    # The empty network (no servers) and the instances without users included: the price model's
    # user sample is never drawn from nothing.
    name, instance = edge_case
    result = solve(instance, "gnn", **options)
    allocation = result.allocation
    assert np.isfinite(allocation.compute).all() and np.isfinite(allocation.bandwidth).all()
    assert max_violation(instance, allocation) <= 1e-7
    assert result.upper_bound is None or np.isfinite(result.upper_bound)


def test_the_price_model_reads_a_sample_of_the_edge_cases_with_users(edge_case):
    from gnnalloc.families.edge._methods import shipped_allocator

    name, instance = edge_case
    # One user per server forces the sample wherever there are at least two per server.
    server, link = shipped_allocator().predict(instance, users_per_server=1)
    assert server.shape == (instance.num_servers,) and link.shape == (instance.num_links,)
    assert np.isfinite(server).all() and np.isfinite(link).all() and (server >= 0).all() and (link >= 0).all()


# An instance the library accepts (every value in [1e-100, 1e100]) on which the share-head
# model's answer has a NaN and the dual's recovery overflows.
_EXTREME = {
    "format": "gnnalloc.instance/v1", "penalty": 10.0, "alpha": 0.5,
    "servers": [{"id": "s0", "compute": 2.101003857887784e-48, "bandwidth": 2.4165090559948685e-82},
                {"id": "s1", "compute": 4.9914725007971e-41, "bandwidth": 1.0473822101998153e+20},
                {"id": "s2", "compute": 7.000807222102077e+62, "bandwidth": 5.153536572015059e+45}],
    "links": [{"a": "s0", "b": "s1", "capacity": 2.2667468264332854e-66},
              {"a": "s1", "b": "s2", "capacity": 1.7427907499193702e-64}],
    "users": [
        {"id": "u0", "server": "s1", "compute_min": 3.803773717579529e-63, "bandwidth_min": 2.1133265832588204e-22,
         "data_rate": 2.4070743548110614e-60, "weight": 7.434044583416317e+65},
        {"id": "u7", "server": "s2", "compute_min": 7.235352841347074e+33, "bandwidth_min": 6.972351951291891e+84,
         "data_rate": 4.883189197270071e+18, "weight": 5.2580654075062346e-93},
        {"id": "u8", "server": "s2", "compute_min": 3.6052439275780816e-16, "bandwidth_min": 1.5204672956069194e-06,
         "data_rate": 2.6521432722681416e+72, "weight": 2.454117075318921e+40},
    ],
}


def test_a_non_finite_learned_answer_is_replaced_by_a_baseline_and_said_so():
    from gnnalloc.families.edge.problem import Instance

    instance = Instance.from_dict(_EXTREME)
    with np.errstate(all="ignore"):
        result = solve(instance, "gnn-shares")
    assert np.isfinite(result.allocation.compute).all() and np.isfinite(result.allocation.bandwidth).all()
    assert "share is returned instead of a non-finite answer" in result.status
    assert np.isfinite(user_utilities(instance, result.allocation).sum())


def test_an_overflowing_dual_recovery_is_a_named_solver_error():
    from gnnalloc.core import SolverError
    from gnnalloc.families.edge.problem import Instance

    with pytest.raises(SolverError, match="overflows.*use method exact"), np.errstate(all="ignore"):
        solve(Instance.from_dict(_EXTREME), "dual")
