"""The one check of a vector argument: what it accepts, what it keeps, and the errors it names."""

import numpy as np
import pytest
import torch

from gnnalloc.core import as_nonnegative_vector


def test_a_tensor_is_kept_as_it_is_and_anything_else_is_copied():
    tensor = torch.ones(3, dtype=torch.float32, requires_grad=True)
    assert as_nonnegative_vector("price", tensor, 3) is tensor  # dtype, device and history kept
    array = np.array([1, 2, 3])
    vector = as_nonnegative_vector("price", array, 3)
    assert vector.dtype == torch.float64 and vector.tolist() == [1.0, 2.0, 3.0]
    array[0] = 7
    assert vector[0] == 1.0  # a copy: later changes to the caller's array do not reach it
    read_only = np.zeros(2)
    read_only.flags.writeable = False
    assert as_nonnegative_vector("price", read_only, 2).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "value, message",
    [
        ("cheap", "expected an array of 3 prices, got str"),
        ([None, None, None], "expected an array of 3 prices, got list"),
        ([[1.0], [2.0, 3.0]], "expected an array of 3 prices, got list"),
        ([1.0, 2.0], r"expected shape \(3,\), got \(2,\)"),
        (np.ones((3, 1)), r"expected shape \(3,\), got \(3, 1\)"),
        ([1.0, -1.0, 0.0], "every entry must be finite and non-negative"),
        ([1.0, float("nan"), 0.0], "every entry must be finite and non-negative"),
        (torch.tensor([float("inf"), 0.0, 0.0]), "every entry must be finite and non-negative"),
    ],
)
def test_bad_vectors_are_named(value, message):
    with pytest.raises(ValueError, match=f"^start.price: {message}"):
        as_nonnegative_vector("start.price", value, 3, "prices")
