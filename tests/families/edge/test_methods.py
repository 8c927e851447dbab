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
    "servers": [{"id": "s0", "compute": 5.2667803671328104e+85, "bandwidth": 5.670605423266907e+30},
                {"id": "s1", "compute": 4.443431911632627e-68, "bandwidth": 6.775321635340392e+44},
                {"id": "s2", "compute": 1.330230599896125e+93, "bandwidth": 2.3651668306423833e-43}],
    "links": [{"a": "s0", "b": "s1", "capacity": 1.584092767385136e+17},
              {"a": "s1", "b": "s2", "capacity": 1.6493198679431123e-22}],
    "users": [
        {"id": "u0", "server": "s1", "compute_min": 3.082164057896087e-50, "bandwidth_min": 7.47863757219251e-48,
         "data_rate": 6.235581382414529e+54, "weight": 5.827963614967843e-17},
        {"id": "u1", "server": "s0", "compute_min": 5.684252551878766e+56, "bandwidth_min": 3.9482798420466524e-20,
         "data_rate": 9.013060889437131e-51, "weight": 1.33048401988999e-91},
        {"id": "u2", "server": "s1", "compute_min": 1.9279879270145061e-16, "bandwidth_min": 6.881564742146956e+27,
         "data_rate": 1.8640870006145483e+84, "weight": 4.631372369937923e+31},
    ],
}


# Another accepted instance, on which the dual's compiled minimiser divided by zero and raised
# ZeroDivisionError (a traceback) before its kernels took numpy's error model.
_DIVIDES_BY_ZERO = {
    "format": "gnnalloc.instance/v1", "penalty": 10.0, "alpha": 0.5,
    "servers": [{"id": "s0", "compute": 6.870663796714028e-58, "bandwidth": 5.830934046373305e-13},
                {"id": "s1", "compute": 3.1366392714719035e-58, "bandwidth": 6.2733829706817504e+94},
                {"id": "s2", "compute": 7.268112126053522e+88, "bandwidth": 7.859621773753635e+83}],
    "links": [{"a": "s0", "b": "s1", "capacity": 4.4655269785595506e+63},
              {"a": "s1", "b": "s2", "capacity": 2.634990577884205e-70}],
    "users": [
        {"id": "u0", "server": "s1", "compute_min": 8.898899123683164e-76, "bandwidth_min": 3.080967484587164e-78,
         "data_rate": 7.980162719280205e-64, "weight": 3.837167579944874e+30},
        {"id": "u1", "server": "s1", "compute_min": 1.8006192711321197e-72, "bandwidth_min": 1.3491606730521706e+72,
         "data_rate": 1.2385925729223524e-08, "weight": 1.182808432245495e+75},
        {"id": "u2", "server": "s1", "compute_min": 4.910440717947179e+87, "bandwidth_min": 1.1058622125696436e-28,
         "data_rate": 1.893452898023654e-12, "weight": 3.4835782293916266e-94},
        {"id": "u3", "server": "s0", "compute_min": 8.70290318107967e+99, "bandwidth_min": 1.8104970154963362e+47,
         "data_rate": 3.49101630848585e-36, "weight": 1.025397147185465e+91},
    ],
}


@pytest.mark.parametrize("method", ["dual", "gnn"])
def test_a_division_by_zero_in_the_dual_kernel_is_no_error(method):
    from gnnalloc.families.edge.problem import Instance

    instance = Instance.from_dict(_DIVIDES_BY_ZERO)
    with np.errstate(all="ignore"):
        result = solve(instance, method)
        value = user_utilities(instance, result.allocation).sum()
        equal = user_utilities(instance, solve(instance, "equal").allocation).sum()
    assert np.isfinite(value) and value >= equal
    assert max_violation(instance, result.allocation) <= 1e-9
    assert result.upper_bound >= value


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


# An accepted instance on which the dual's minimiser (numba's error model, for its numerics)
# divides by zero: the solve runs it again compiled under numpy's error model.
_MINIMISER_DIVIDES_BY_ZERO = {
    "format": "gnnalloc.instance/v1", "penalty": 10.0, "alpha": 2.0,
    "servers": [{"id": "s0", "compute": 8.37614710246022e-98, "bandwidth": 1.901190230112065e-80},
                {"id": "s1", "compute": 1.2860149005202848e-63, "bandwidth": 2.716302440987705e-23},
                {"id": "s2", "compute": 1.7845457805217842e-50, "bandwidth": 1.0371310169523447e-41}],
    "links": [{"a": "s0", "b": "s1", "capacity": 2.8182013125298646e+72},
              {"a": "s1", "b": "s2", "capacity": 2.839122092175567e+61}],
    "users": [
        {"id": "u0", "server": "s2", "compute_min": 2.366016883824859e+73, "bandwidth_min": 5.074929002646924e+31,
         "data_rate": 5.545944453684816e+35, "weight": 2.3566148609208743e-23},
        {"id": "u1", "server": "s2", "compute_min": 1.9389974672109606e-60, "bandwidth_min": 4.215456007060827e-25,
         "data_rate": 8.46560461284642e-37, "weight": 6.004285848574384e+31},
    ],
}


def test_a_division_by_zero_in_the_dual_minimiser_reruns_it_without_raising(monkeypatch):
    from gnnalloc.families.edge.problem import Instance
    from gnnalloc.families.edge.solvers import _dual

    calls = []
    fallback = _dual.minimise_dual_without_raising
    monkeypatch.setattr(_dual, "minimise_dual_without_raising", lambda: calls.append(1) or fallback())
    instance = Instance.from_dict(_MINIMISER_DIVIDES_BY_ZERO)
    with np.errstate(all="ignore"):
        for method in ("dual", "gnn"):
            result = solve(instance, method)
            value = user_utilities(instance, result.allocation).sum()
            assert np.isfinite(value) and max_violation(instance, result.allocation) <= 1e-9
            assert value <= result.upper_bound <= value + 1e-6 * abs(value)
    if not calls:  # where it divides by zero depends on the CPU's code generation (_dual_kernel)
        pytest.skip("this CPU's compilation of the minimiser does not divide by zero on this instance")


def _small_compiled_dual():
    """A compiled dual at 0.01 on 30 EUA users, and its water-filling start."""
    import torch

    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers import _dual
    from gnnalloc.families.edge.solvers.functional import waterfill_prices

    problem = ProblemTensors.from_instance(eua_instance(30, 1.0, seed=3), dtype=torch.float64)
    prices = waterfill_prices(problem)
    constants = _dual._UserConstants.of(problem, 0.01, _dual._reference_price(problem, prices))
    return _dual._CompiledDual(problem, constants), np.concatenate([prices.numpy(), np.zeros(problem.num_links)])


def test_the_minimisers_rerun_starts_from_the_memory_the_failed_run_was_handed(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual

    dual, start = _small_compiled_dual()
    memory = _dual._CurvatureMemory(start.size)
    memory.steps[0], memory.ring[:] = 7.0, (1, 0)

    def fails_midway(*args):  # scribbles on the memory, then divides by zero
        args[6][0], args[9][:] = -1.0, (0, -1)
        raise ZeroDivisionError("division by zero")

    seen = []

    def rerun(*args):
        seen.append((args[6].copy(), args[9].copy()))
        return args[0], 0.0, 0, 0, 0.0

    monkeypatch.setattr(_dual, "minimise_dual", fails_midway)
    monkeypatch.setattr(_dual, "minimise_dual_without_raising", lambda: rerun)
    dual.minimise(start, np.ones_like(start), 5, memory=memory)
    assert len(seen) == 1
    steps, ring = seen[0]
    assert (steps[0] == 7.0).all() and tuple(ring) == (1, 0)


def test_the_minimisers_rerun_from_a_fresh_memory_starts_afresh(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual

    dual, start = _small_compiled_dual()
    memory = _dual._CurvatureMemory(start.size)  # no pair stored: only its ring is kept
    ring_before = tuple(memory.ring)

    def fails_midway(*args):  # stores a pair, then divides by zero
        args[6][0], args[9][:] = -1.0, (1, 0)
        raise ZeroDivisionError("division by zero")

    seen = []

    def rerun(*args):
        seen.append(args[9].copy())
        return args[0], 0.0, 0, 0, 0.0

    monkeypatch.setattr(_dual, "minimise_dual", fails_midway)
    monkeypatch.setattr(_dual, "minimise_dual_without_raising", lambda: rerun)
    dual.minimise(start, np.ones_like(start), 5, memory=memory)
    # The rerun finds no pair stored: the scribbled one is never read.
    assert len(seen) == 1 and tuple(seen[0]) == ring_before and ring_before[0] == 0
