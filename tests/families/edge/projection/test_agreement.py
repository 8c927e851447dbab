"""FastProjection against the cvxpylayers reference: values to 1e-6 and vector-Jacobian products."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gnnalloc import Allocation, Instance, eua_instance, random_instance
from gnnalloc.families.edge.problem import ProblemTensors, max_violation
from gnnalloc.families.edge.projection import CvxpyProjection, FastProjection


def raw(instance: Instance, rng: np.random.Generator, batch: int, scale: float = 1.0):
    """Demand-sized raw decisions around the feasible region, about a quarter negative."""
    share = instance.compute_min[instance.pair_user] / 3.0
    compute = share * rng.normal(0.7, 1.0, (batch, instance.num_pairs)) * scale
    bandwidth = instance.bandwidth_min * rng.normal(0.7, 1.0, (batch, instance.num_users)) * scale
    return torch.tensor(compute), torch.tensor(bandwidth)


def assert_agree(a: torch.Tensor, b: torch.Tensor, scale: float, rtol: float = 1e-6) -> None:
    assert float((a - b).abs().max()) <= rtol * max(1.0, scale)


@pytest.fixture(scope="module")
def reference() -> CvxpyProjection:
    return CvxpyProjection()


CASES = {
    "random-50": lambda: random_instance(50, 6, 1.0, 0),
    "eua-100": lambda: eua_instance(100, 1.0, 1),
    "random-500": lambda: random_instance(500, 40, 1.2, 2),
    "eua-500": lambda: eua_instance(500, 0.8, 3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_agree(name, reference):
    instance = CASES[name]()
    problem = ProblemTensors.from_instance(instance)
    rng = np.random.default_rng(11)
    raw_c, raw_b = raw(instance, rng, 2, scale=3.0)
    x_ref, y_ref = reference(raw_c, raw_b, problem)
    assert reference.last_unpolished == 0
    x, y = FastProjection()(raw_c, raw_b, problem)
    scale = float(max(raw_c.abs().max(), raw_b.abs().max()))
    assert_agree(x, x_ref, scale)
    assert_agree(y, y_ref, scale)
    for i in range(2):
        assert max_violation(instance, Allocation(x[i].numpy(), y[i].numpy())) <= 1e-7


@pytest.mark.parametrize("name", ["random-50", "eua-100"])
def test_values_agree_far_outside(name, reference):
    # 1000x the demands: an interior point's accuracy (~sqrt(tol) * distance) is then far too
    # coarse, so the reference checks the optimality of the fast answer instead. x = proj(z) iff
    # z - x is in the normal cone at x, iff x = proj(x + t (z - x)) for any t in (0, 1]; with a
    # small t the reference's input is close to its output, where it is accurate, and an error
    # e in x shows up as about t * e.
    instance = CASES[name]()
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = raw(instance, np.random.default_rng(5), 1, scale=1e3)
    projection = FastProjection()
    x, y = projection(raw_c, raw_b, problem)
    assert projection.last_stats.converged
    t = 1e-3
    x_ref, y_ref = reference(x + t * (raw_c - x), y + t * (raw_b - y), problem)
    assert reference.last_unpolished == 0
    scale = float(max(x.abs().max(), y.abs().max()))
    assert_agree(x, x_ref, scale, rtol=1e-9)
    assert_agree(y, y_ref, scale, rtol=1e-9)


def test_edge_cases_agree(tiny_dict, reference):
    base = random_instance(60, 8, 1.2, 4)
    compute, links = base.server_compute.copy(), base.link_capacity.copy()
    compute[7] = 0.0
    links[0] = 0.0
    bandwidth = base.server_bandwidth.copy()
    bandwidth[2] = 0.0
    closed = dataclasses.replace(base, server_compute=compute, link_capacity=links, server_bandwidth=bandwidth)
    tiny_dict["links"] = []
    for instance in (closed, Instance.from_dict(tiny_dict)):
        problem = ProblemTensors.from_instance(instance)
        raw_c, raw_b = raw(instance, np.random.default_rng(3), 2, scale=3.0)
        x_ref, y_ref = reference(raw_c, raw_b, problem)
        x, y = FastProjection()(raw_c, raw_b, problem)
        scale = float(max(raw_c.abs().max(), raw_b.abs().max()))
        assert_agree(x, x_ref, scale)
        assert_agree(y, y_ref, scale)


@pytest.mark.parametrize("make", [lambda: random_instance(20, 4, 1.0, 0), lambda: eua_instance(30, 1.0, 1)])
def test_vector_jacobian_products_agree(make):
    instance = make()
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = raw(instance, np.random.default_rng(8), 2, scale=3.0)
    reference = CvxpyProjection(mode="dense")  # diffcp's exact derivative
    generator = torch.Generator().manual_seed(1)
    cot_c = torch.randn(raw_c.shape, generator=generator, dtype=torch.float64)
    cot_b = torch.randn(raw_b.shape, generator=generator, dtype=torch.float64)
    grads = []
    for projection in (reference, FastProjection()):
        c, b = raw_c.clone().requires_grad_(), raw_b.clone().requires_grad_()
        x, y = projection(c, b, problem)
        grads.append(torch.autograd.grad((x * cot_c).sum() + (y * cot_b).sum(), (c, b)))
    (ref_c, ref_b), (fast_c, fast_b) = grads
    # Jacobian entries are of order 1. diffcp differentiates the interior-point solution at its
    # final barrier parameter, which blurs rows whose multiplier is small: 1e-8 on the random
    # instance, 4e-6 on the EUA one.
    assert float((ref_c - fast_c).abs().max()) <= 1e-5
    assert float((ref_b - fast_b).abs().max()) <= 1e-5
    assert float(fast_c.abs().max()) > 0.1  # not trivially zero
