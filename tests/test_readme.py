"""The README's format examples are real documents of the library."""

import json
import re
from pathlib import Path

from gnnalloc.families.edge.problem import Allocation, Instance

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _json_blocks() -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", README, flags=re.S)]


def test_the_instance_and_allocation_examples_load():
    documents = {doc["format"]: doc for doc in _json_blocks()}
    instance = Instance.from_dict(documents["gnnalloc.instance/v1"])
    allocation = Allocation.from_dict(instance, documents["gnnalloc.allocation/v1"])
    assert allocation.compute.shape == (instance.num_pairs,)
