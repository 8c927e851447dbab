"""The field readers every family's parsers are made of: each failure names its JSON path."""

from __future__ import annotations

import pytest

from gnnalloc.core import AllocationError, InstanceError, entries_by_id, number_field, object_field


def _read(entries, allowed=("power",)):
    return [(path, k, dict(entry)) for path, k, entry in entries_by_id(entries, "links", ("a", "b"), "link", allowed)]


def test_entries_by_id_yields_paths_and_positions_in_any_order():
    out = _read([{"id": "b", "power": 1}, {"id": "a", "power": 2}])
    assert [(path, k) for path, k, _ in out] == [("links[0]", 1), ("links[1]", 0)]


@pytest.mark.parametrize(
    ("entries", "field", "message"),
    [
        ({"id": "a"}, "links", "expected a list"),
        ([{"id": "a"}, 3], "links[1]", "expected an object"),
        ([{"id": "a", "watts": 1}], "links[0].watts", "unknown field"),
        ([{"id": 7}], "links[0].id", "expected a string"),
        ([{"id": "z"}], "links[0].id", "unknown link id 'z'"),
        ([{"id": "a"}, {"id": "a"}], "links[1].id", "link 'a' appears twice"),
        ([{"id": "a"}], "links", "link 'b' is missing"),
    ],
)
def test_entries_by_id_names_the_bad_field(entries, field, message):
    with pytest.raises(InstanceError, match=message) as info:
        _read(entries)
    assert info.value.field == field


def test_the_error_class_is_the_callers():
    with pytest.raises(AllocationError):
        list(entries_by_id([], "users", ("u",), "user", error=AllocationError))
    with pytest.raises(AllocationError, match="finite"):
        number_field(float("inf"), "x", AllocationError)


def test_object_field_names_unknown_then_missing_keys():
    with pytest.raises(InstanceError) as info:
        object_field({"a": 1, "zz": 2}, "$", ("a",), required=("b",))
    assert info.value.field == "zz"
    with pytest.raises(InstanceError, match="missing") as info:
        object_field({"a": 1}, "server", ("a",), required=("b",))
    assert info.value.field == "server.b"


@pytest.mark.parametrize("value, minimum, message", [
    (-1, 0, "rounds: must be a non-negative integer, got -1"),
    (-1, 1, "rounds: must be at least 1, got -1"),
    (0, 1, "rounds: must be at least 1, got 0"),
    (1.5, 0, "rounds: must be a non-negative integer, got 1.5"),
    (True, 2, "rounds: must be an integer of at least 2, got True"),
])
def test_check_count_names_the_field_and_its_minimum(value, minimum, message):
    from gnnalloc.core import check_count

    with pytest.raises(ValueError) as info:
        check_count("rounds", value, minimum=minimum)
    assert str(info.value) == message
    check_count("rounds", max(minimum, 3), minimum=minimum)


def test_check_count_without_a_maximum_stops_at_2_to_the_62():
    """Beyond it a count no longer fits the 64-bit integers the compiled kernels take."""
    from gnnalloc.core import MAX_COUNT, check_count

    check_count("iterations", MAX_COUNT)
    with pytest.raises(ValueError) as info:
        check_count("iterations", 2**70)
    assert str(info.value) == f"iterations: must be at most 2^62, got {2**70}"


def test_check_bound_names_an_integer_beyond_float_range():
    from gnnalloc.core import InputError, check_bound

    check_bound("upper_bound", 10**300)
    check_bound("upper_bound", float("inf"))
    with pytest.raises(InputError, match="^upper_bound: must be a number"):
        check_bound("upper_bound", 10**400)


@pytest.mark.parametrize("value", [0, 11, 10**12, 2.0, True, "5"])
def test_check_count_with_a_maximum_gives_the_range(value):
    """The one bound check of sizes and counts whose arrays must fit in memory."""
    import numpy as np

    from gnnalloc.core import check_count

    with pytest.raises(ValueError) as info:
        check_count("links", value, 1, 10)
    assert str(info.value) == f"links: must be an integer in [1, 10], got {value!r}"
    check_count("links", 10, 1, 10)
    check_count("links", np.int64(1), 1, 10)


@pytest.mark.parametrize("check, value", [
    ("check_count", -1), ("check_fraction", 2.0), ("check_positive", 0.0), ("check_nonnegative", float("nan")),
    ("check_bound", float("nan")),
])
def test_every_check_raises_the_library_s_input_error(check, value):
    """What the CLI answers with exit 2 and the server with 422: an InputError (a ValueError, so
    ``except ValueError`` still catches it), never a bare ValueError, which they treat as a bug."""
    import gnnalloc.core
    from gnnalloc.core import InputError, InstanceError

    with pytest.raises(InputError, match="^name: "):
        getattr(gnnalloc.core, check)("name", value)
    assert issubclass(InputError, ValueError) and issubclass(InstanceError, InputError)


@pytest.mark.parametrize("value, message", [
    (0.0, "time_limit: must be a positive finite number, got 0.0"),
    (1e308, "time_limit: must be at most 1e+09 seconds, got 1e+308"),
])
def test_check_time_limit_bounds_every_method_s_limit(value, message):
    """1e308 seconds overflowed the anytime solvers' integer iteration budgets (a traceback)."""
    from gnnalloc.core import InputError, check_time_limit

    with pytest.raises(InputError) as info:
        check_time_limit(value)
    assert str(info.value) == message
    check_time_limit(1e9)


@pytest.mark.parametrize("answer", [None, "x"])
def test_every_family_s_score_names_an_allocation_of_the_wrong_type(answer):
    """Was an AttributeError traceback (edge: any wrong type; power and sfl: None)."""
    from gnnalloc.core import AllocationError, score, solve
    from gnnalloc.families.edge import random_instance
    from gnnalloc.families.power import gaussian
    from gnnalloc.families.sfl import random_sfl

    for instance, baseline in ((random_instance(4, 2, seed=0), "equal"), (gaussian(3), "full_power"),
                               (random_sfl(3, 0), "equal")):
        with pytest.raises(AllocationError, match=r"^allocation: expected an? \w+"):
            score(instance, answer)
        if answer is not None:  # None: no reference
            with pytest.raises(AllocationError, match=r"^reference: expected an? \w+"):
                score(instance, solve(instance, baseline).allocation, answer)


def test_seeds_take_any_non_negative_integer_below_2_to_the_128():
    """numpy's generators do; counts stop at 2^62, seeds not."""
    from gnnalloc.core import InputError, check_seed
    from gnnalloc.families.edge import random_instance
    from gnnalloc.families.power import gaussian
    from gnnalloc.families.sfl import random_sfl

    random_instance(5, 2, seed=2**63)
    gaussian(3, 2**64 - 1)
    random_sfl(3, 2**100)
    for bad in (2**128, -1, 1.0, True):
        with pytest.raises(InputError, match="^seed: must be an integer in"):
            check_seed(bad)
