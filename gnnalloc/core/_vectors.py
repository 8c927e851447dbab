"""Reading a vector argument (prices, powers, ...) that a caller hands over as a tensor, an array
or a sequence: one check, every failure an :class:`~gnnalloc.core.InputError` that names the argument."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gnnalloc.core._errors import InputError

__all__ = ["as_nonnegative_vector"]


def as_nonnegative_vector(name: str, value: object, size: int, what: str = "values") -> Tensor:
    """``value`` as ``(size,)`` finite, non-negative entries (``what`` they are, for the
    error messages): a tensor as it is (its dtype,
    device and autograd history kept, for callers that differentiate through it), anything
    else as a new float64 tensor (a copy, so later changes to the caller's array do not reach it).

    Raises:
        ValueError: naming ``name``: not numbers, another shape, or a negative or non-finite entry.
    """
    if isinstance(value, Tensor):
        vector = value
    else:
        try:
            array = np.array(value)  # no dtype forced: None or text would become NaN or a number
        except (TypeError, ValueError):
            array = None
        if array is None or array.dtype.kind not in "biuf":
            raise InputError(f"{name}: expected an array of {size} {what}, got {type(value).__name__}")
        vector = torch.from_numpy(array.astype(np.float64))
    if vector.shape != (size,):
        raise InputError(f"{name}: expected shape ({size},), got {tuple(vector.shape)}")
    if not bool((torch.isfinite(vector) & (vector >= 0)).all()):
        raise InputError(f"{name}: every entry must be finite and non-negative")
    return vector
