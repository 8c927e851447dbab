"""Datasets every family's data module can use."""

from __future__ import annotations

from typing import Sequence, TypeVar

from torch.utils.data import Dataset

__all__ = ["GraphList"]

Item = TypeVar("Item")


class GraphList(Dataset[Item]):
    """A fixed list of prepared samples (graphs built, labels solved once at setup)."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Item:
        return self.items[index]
