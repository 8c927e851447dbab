"""segment_rank against a per-segment sort in Python."""

import pytest
import torch

from gnnalloc.ops import segment_rank


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("with_key", [False, True])
def test_ranks_equal_a_sort_of_each_segment(descending, with_key):
    g = torch.Generator().manual_seed(3)
    index = torch.randint(0, 7, (60,), generator=g)  # some segments empty, unsorted
    key = torch.randint(0, 5, (60,), generator=g).double() if with_key else None  # ties kept by position
    rank = segment_rank(index, 9, key, descending=descending)
    for s in range(9):
        members = [i for i in range(60) if int(index[i]) == s]
        if key is not None:
            members.sort(key=lambda i: (-float(key[i]) if descending else float(key[i]), i))
        assert [int(rank[i]) for i in members] == list(range(len(members)))
