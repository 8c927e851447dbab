"""Fixtures shared by the edge solvers' tests."""

import pytest


@pytest.fixture
def minimiser_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The dual evaluations of every compiled L-BFGS run from now on, in order (the kernel
    reports them; :class:`~gnnalloc.families.edge.solvers._dual._CompiledDual` drops them)."""
    from gnnalloc.families.edge.solvers import _dual

    evaluations: list[int] = []
    kernel = _dual.minimise_dual

    def counted(*args):
        result = kernel(*args)
        evaluations.append(result[3])
        return result

    monkeypatch.setattr(_dual, "minimise_dual", counted)
    return evaluations
