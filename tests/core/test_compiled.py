"""The numba decorator of every compiled kernel: cached where it can be, compiled anyway where not."""

from __future__ import annotations

from gnnalloc.core import compiled


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    # A read-only install with a read-only home: numba has no cache locator, and caching must
    # not turn into an import error.
    import numba.core.caching

    monkeypatch.setattr(numba.core.caching.CacheImpl, "_locator_classes", [])

    @compiled()
    def add_one(x):
        return x + 1.0

    assert add_one(1.0) == 2.0
    assert type(add_one._cache).__name__ == "NullCache"  # the fallback ran: no cache in use


def test_options_may_override_the_defaults():
    @compiled(nogil=False)
    def add_two(x):
        return x + 2.0

    assert add_two(1.0) == 3.0 and not add_two.targetoptions.get("nogil", False)


def test_options_reach_numba():
    @compiled(fastmath=False, error_model="numpy")
    def divide(x, y):
        return x / y

    assert divide(1.0, 0.0) == float("inf")  # numpy's error model: no ZeroDivisionError
    assert divide.targetoptions["nogil"] and divide.targetoptions["error_model"] == "numpy"


def test_cache_false_compiles_in_the_process_only():
    def add_three(x):
        return x + 3.0

    uncached = compiled(cache=False)(add_three)
    assert uncached(1.0) == 4.0
    assert type(uncached._cache).__name__ == "NullCache" and "cache" not in uncached.targetoptions
