"""The allocator end to end: always feasible and finite, checkpoints round-trip safely."""

import numpy as np
import pytest
import torch

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.metrics import score
from gnnalloc.families.edge.nn.allocator import Allocator
from gnnalloc.families.edge.problem import max_violation
from gnnalloc.core import solve


@pytest.fixture(scope="module")
def model() -> Allocator:
    torch.manual_seed(0)
    return Allocator(hidden=16, heads=2, layers=1)


@pytest.mark.parametrize("search_rounds", [0, 2])
def test_feasible_and_finite_on_edge_cases(model, edge_case, search_rounds):
    _, instance = edge_case
    alloc = model.allocate(instance, search_rounds=search_rounds)
    assert np.isfinite(alloc.compute).all() and np.isfinite(alloc.bandwidth).all()
    assert max_violation(instance, alloc) <= 1e-7
    assert np.isfinite(score(instance, alloc).objective)


def test_search_rounds_never_lower_the_objective(model):
    instance = eua_instance(150, 1.2, 4)
    plain = score(instance, model.allocate(instance, search_rounds=0)).objective
    searched = model.allocate(instance, search_rounds=3)
    assert score(instance, searched).objective >= plain
    assert max_violation(instance, searched) <= 1e-9
    with pytest.raises(ValueError, match="search_rounds"):
        model.allocate(instance, search_rounds=-1)
    with pytest.raises(ValueError, match="search_rounds"):
        Allocator(hidden=16, heads=2, layers=1, search_rounds=-1)


def test_inference_mode_gives_the_no_grad_allocation(model):
    # Lightning's validate/test run under torch.inference_mode, whose tensors have no version
    # counter (the projection's structure cache keys on it).
    instance = eua_instance(60, 1.0, 2)
    reference = model.allocate(instance, search_rounds=1)
    with torch.inference_mode():
        for _ in range(2):  # the second call would be the cache hit
            alloc = model.allocate(instance, search_rounds=1)
            np.testing.assert_array_equal(alloc.compute, reference.compute)
            np.testing.assert_array_equal(alloc.bandwidth, reference.bandwidth)


def test_checkpoint_with_a_malformed_search_rounds_fails_by_name(tmp_path, model):
    data = model.checkpoint_dict()
    data["hyper_parameters"]["search_rounds"] = "3"
    path = tmp_path / "bad.ckpt"
    torch.save(data, path)
    with pytest.raises(ValueError, match="search_rounds: must be a non-negative integer"):
        Allocator.from_checkpoint(path)


def test_every_parameter_gets_a_gradient(model):
    graph, problem = model.prepare([random_instance(30, 5, 1.0, 1), eua_instance(40, 1.0, 2, sites=8)])
    model.train()
    out = model(graph, problem)
    (-problem.user_utility(out.compute, out.bandwidth).sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.zero_grad()


def test_checkpoint_round_trip_weights_only(tmp_path, model):
    path = tmp_path / "m.ckpt"
    model.save(path, note="test")
    loaded = Allocator.from_checkpoint(path)
    assert loaded.config() == model.config() and loaded.metadata == {"note": "test"}
    inst = random_instance(25, 4, 1.0, 9)
    assert np.allclose(loaded.allocate(inst).compute, model.allocate(inst).compute)
    # The file must load under torch's safe unpickler.
    torch.load(path, weights_only=True)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        Allocator.from_checkpoint(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint"):
        Allocator.from_checkpoint(junk)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"nope": torch.zeros(1)}, "format": "gnnalloc.checkpoint/v1",
                "hyper_parameters": {}}, other)
    with pytest.raises(ValueError, match="does not match"):
        Allocator.from_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        Allocator.from_checkpoint(tmp_path)  # a directory


def _tampered(path, model, change):
    data = model.checkpoint_dict()
    change(data)
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["hyper_parameters"].update(heads=0), r"hyper_parameters\.heads: must be >= 1"),
        (lambda d: d["hyper_parameters"].update(hidden="64"), r"hyper_parameters\.hidden: must be"),
        (lambda d: d["hyper_parameters"].update(dropout=2.0), r"hyper_parameters\.dropout: must be"),
        (lambda d: d["hyper_parameters"].update(projection_tol=-1.0), r"hyper_parameters\.projection_tol"),
        (lambda d: d["hyper_parameters"].update(problem_dtype="float16"), r"hyper_parameters\.problem_dtype"),
        (lambda d: d.update(hyper_parameters=[1, 2, 3]), "hyper_parameters is a list"),
        (lambda d: d.update(state_dict=None), "has no state_dict"),
        (lambda d: d.update(state_dict=[1, 2]), "has no state_dict"),
        (lambda d: d.update(format="gnnalloc.checkpoint/v2"), "has format 'gnnalloc.checkpoint/v2'"),
        (lambda d: d["state_dict"].update(
            {k: torch.full_like(v, float("nan")) for k, v in list(d["state_dict"].items())[:1]}
        ), "is not a finite tensor"),
    ],
    ids=["heads-0", "hidden-str", "dropout-2", "tol-negative", "dtype-16", "hparams-list",
         "state-none", "state-list", "format-v2", "weight-nan"],
)
def test_malformed_checkpoints_fail_by_name(tmp_path, model, change, message):
    path = _tampered(tmp_path / "bad.ckpt", model, change)
    with pytest.raises(ValueError, match=rf"^checkpoint: .*{message}"):
        Allocator.from_checkpoint(path)


def test_a_pickled_non_dictionary_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="holds a list, not a checkpoint"):
        Allocator.from_checkpoint(path)


def test_solve_with_gnn_method(tmp_path, model):
    path = tmp_path / "m.ckpt"
    model.save(path)
    inst = eua_instance(60, 1.0, 4)
    result = solve(inst, "gnn", checkpoint=path)
    assert result.method == "gnn" and max_violation(inst, result.allocation) <= 1e-7


def test_size_agnostic(model):
    for n in (5, 500):
        alloc = model.allocate(eua_instance(n, 1.0, n))
        assert alloc.bandwidth.shape == (n,)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_map_location_without_cuda_is_named(tmp_path, model):
    path = tmp_path / "m.ckpt"
    model.save(path)
    with pytest.raises(ValueError, match="^map_location: 'cuda' asks for CUDA"):
        Allocator.from_checkpoint(path, map_location="cuda")


def _crafted(tmp_path, **changes):
    import torch as _torch

    from gnnalloc.families.edge.nn.allocator import Allocator as _Allocator

    _torch.manual_seed(0)
    data = _Allocator(hidden=16, heads=2, layers=1).checkpoint_dict()
    data["hyper_parameters"].update(changes)
    path = tmp_path / "crafted.ckpt"
    _torch.save(data, path)
    return path


def test_huge_hyperparameters_are_refused_before_allocating(tmp_path):
    import pytest as _pytest

    from gnnalloc.families.edge.nn.allocator import Allocator as _Allocator

    path = _crafted(tmp_path, hidden=2**40)
    with _pytest.raises(ValueError, match=r"^checkpoint: .*hyper_parameters\.hidden: must be at most 4096"):
        _Allocator.from_checkpoint(path)


def test_mismatched_weights_are_one_line(tmp_path):
    import pytest as _pytest

    from gnnalloc.families.edge.nn.allocator import Allocator as _Allocator

    path = _crafted(tmp_path, hidden=32)
    with _pytest.raises(ValueError) as info:
        _Allocator.from_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and "has shape" in message, message


def test_cut_message_drops_colour_codes_and_newlines():
    from gnnalloc.core import cut_message

    assert cut_message("\x1b[31mred\x1b[0m\nline two") == "red line two"


def test_a_model_whose_decisions_are_not_finite_fails_as_a_solver_not_as_the_caller_s_input():
    """Weights at 1e30 give NaN decisions, which the projection would refuse as an input error
    naming ``raw_compute``, a field the caller never sent. It is the model failing on this
    instance: a SolverError (CLI exit 3, HTTP 422 naming ``method``), raised where they appear."""
    from gnnalloc.core import SolverError

    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e30)
    instance = random_instance(30, 4, 1.0, seed=2)
    with pytest.raises(SolverError, match="compute decisions are not finite"):
        model.allocate(instance)


def test_a_completion_that_overflows_fails_as_a_solver_not_as_the_caller_s_input(monkeypatch):
    """Finite decisions whose projection overflows (magnitudes at extremes) are refused by the
    refill as an input error naming ``compute``; ``allocate`` reports the model failing."""
    from gnnalloc.core import SolverError

    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1)
    project = model.projection.forward

    def overflowing(raw_compute, raw_bandwidth, problem):
        projected, bandwidth = project(raw_compute, raw_bandwidth, problem)
        return torch.full_like(projected, float("inf")), bandwidth

    monkeypatch.setattr(model.projection, "forward", overflowing)
    with pytest.raises(SolverError, match="decisions cannot be completed"):
        model.allocate(random_instance(30, 4, 1.0, seed=2))
