"""The command line is generic: another family's generators, methods and documents plug in from
its FAMILY object alone."""

from __future__ import annotations

import re

import json
from dataclasses import dataclass
from typing import Any

import pytest

from gnnalloc.cli import main
from gnnalloc.core import InstanceError, Method, SolveResult, register_family
from gnnalloc.core import _registry


@dataclass
class Toy:
    sizes: list[float]


@dataclass
class ToyScore:
    objective: float
    gap: float | None = None
    gap_bound: float | None = None
    max_violation: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"objective": self.objective}

    def rows(self) -> list[tuple[str, str]]:
        return [("toy objective", f"{self.objective:.3f}")]


def line(items: int, seed: int = 0, *, spread: float = 1.0) -> Toy:
    """Items of growing size."""
    return Toy([spread * (i + seed) for i in range(items)])


class ToyFamily:
    name = "toy"
    title = "a test family"
    instance_format = "toy.instance/v1"
    allocation_format = "toy.allocation/v1"
    instance_type = Toy
    methods = {"all": Method("all", lambda t: SolveResult(list(t.sizes), "all", 0.0), "take all")}
    reference_method = "all"
    generators = {"line": line}
    value_ranges: dict[str, tuple[float, float]] = {}
    instance_schema = dict
    default_checkpoint = None

    def parse_instance(self, data: Any) -> Toy:
        if not isinstance(data.get("sizes"), list):
            raise InstanceError("sizes", "expected a list")
        return Toy(data["sizes"])

    def dump_instance(self, instance: Toy) -> dict[str, Any]:
        return {"format": self.instance_format, "sizes": instance.sizes}

    def parse_allocation(self, instance: Toy, data: Any) -> list[float]:
        return list(data["taken"])

    def dump_allocation(self, instance: Toy, allocation: list[float]) -> dict[str, Any]:
        return {"format": self.allocation_format, "taken": allocation}

    def size(self, instance: Toy) -> int:
        return len(instance.sizes)

    def check_ranges(self, instance: Toy, ranges: Any) -> None:
        pass

    def score(self, instance: Toy, allocation: Any, reference: Any = None, upper_bound: Any = None) -> ToyScore:
        return ToyScore(float(sum(allocation)))


@pytest.fixture
def toy():
    family = register_family(ToyFamily())
    yield family
    del _registry._FAMILIES[family.name]


def test_another_family_s_plain_generator_gets_flags_from_its_signature(toy, tmp_path, capsys):
    out = tmp_path / "toy.json"
    assert main(["generate", "line", "--items", "3", "--seed", "1", "--spread", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"format": "toy.instance/v1", "sizes": [2.0, 4.0, 6.0]}
    assert main(["solve", str(out), "--out", str(tmp_path / "a.json")]) == 0  # its reference
    printed = capsys.readouterr().out
    assert re.search(r"^toy objective +12\.000$", printed, re.M) and "status" in printed
    assert json.loads((tmp_path / "a.json").read_text())["taken"] == [2.0, 4.0, 6.0]
    # The edge family's generators keep their flags beside the new one.
    assert main(["generate", "random", "--users", "4", "--servers", "2"]) == 0


def test_a_method_of_another_family_is_refused_by_name(toy, tmp_path, capsys):
    out = tmp_path / "toy.json"
    assert main(["generate", "line", "--items", "2", "--out", str(out)]) == 0
    assert main(["solve", str(out), "--method", "exact"]) == 2
    assert "error: method: unknown 'exact' for the toy family" in capsys.readouterr().err


def test_fit_names_an_unknown_family(capsys):
    assert main(["fit", "--family", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: family: unknown 'nope'")


@pytest.mark.parametrize("family", ["[sfl]", "42", "null"])
def test_fit_names_a_config_family_that_is_not_a_name(tmp_path, capsys, family):
    """Not read as no family (the default would train, here the edge model)."""
    config = tmp_path / "c.yaml"
    config.write_text(f"family: {family}\n")
    assert main(["fit", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("error: family: expected a family name")


def test_keyword_only_generators_without_seed_get_required_flags(toy, tmp_path, capsys):
    def grid(*, items: int, width: "float") -> Toy:
        """A grid."""
        return Toy([width] * items)

    toy.generators["grid"] = grid
    try:
        assert main(["generate", "grid", "--items", "2", "--width", "1.5"]) == 0
        assert json.loads(capsys.readouterr().out)["sizes"] == [1.5, 1.5]
        with pytest.raises(SystemExit):
            main(["generate", "grid", "--items", "2", "--seed", "1"])  # no --seed, --width missing
    finally:
        del toy.generators["grid"]


def test_a_family_claiming_another_s_extra_allocation_format_is_refused():
    """Formats choose the family: the power family's frame format is taken, as an allocation
    format and as an extra one."""
    from gnnalloc.core import allocation_formats, get_family

    assert allocation_formats(get_family("power")) == ("gnnalloc.power-allocation/v1", "gnnalloc.power-frame/v1")
    for attribute, value, error, message in (
        ("allocation_format", "gnnalloc.power-frame/v1", ValueError, "clashes with 'power'"),
        ("extra_allocation_formats", ("gnnalloc.power-frame/v1",), ValueError, "clashes with 'power'"),
        ("extra_allocation_formats", "toy.frame/v1", TypeError, "tuple of strings"),  # a string, not a tuple
        ("extra_allocation_formats", ("toy.allocation/v1",), ValueError, "one format twice"),
    ):
        family = ToyFamily()
        setattr(family, attribute, value)
        with pytest.raises(error, match=message):
            register_family(family)


@pytest.mark.parametrize(
    ("option", "field"),
    [("fair_time", "option"), ("=3", "option"), ("fair_time=nan", "fair_time"), ("fair_time=NaN", "fair_time"),
     ("slots=x", "slots"), ("slots=true", "slots"), ("gap_tol=0.1", "option"), ("checkpoint=1", "option"),
     ("fair_time=1" + "0" * 400, "fair_time"), ("fair_time=1" + "0" * 5000, "fair_time"), ("alpha=1e400", "alpha")],
)
def test_solve_options_are_numbers_named_when_bad(tmp_path, capsys, option, field):
    out = tmp_path / "p.json"
    assert main(["generate", "gaussian", "--links", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["solve", str(out), "--method", "wmmse_frame", "--option", option]) == 2
    assert capsys.readouterr().err.startswith(f"error: {field}: ")


def test_integer_options_beyond_64_bits_are_named_not_crashes(tmp_path, capsys):
    """An integer too large for a 64-bit argument is refused by name, as a count and as a real
    number (it overflowed the first tensor or kernel argument it reached)."""
    huge = "1180591620717411303424"  # 2^70
    edge, power = tmp_path / "e.json", tmp_path / "p.json"
    assert main(["generate", "random", "--users", "4", "--servers", "2", "--out", str(edge)]) == 0
    assert main(["generate", "gaussian", "--links", "3", "--out", str(power)]) == 0
    capsys.readouterr()
    for method in ("dual", "gnn"):
        assert main(["solve", str(edge), "--method", method, "--option", f"iterations={huge}"]) == 2
        assert capsys.readouterr().err.startswith(f"error: iterations: must be at most 2^62, got {huge}")
    assert main(["solve", str(power), "--method", "wmmse", "--option", f"tol={huge}"]) == 2
    assert capsys.readouterr().err.startswith("error: tol: an integer beyond 64 bits; write it as a float")
    assert main(["solve", str(power), "--method", "wmmse", "--option", "tol=1.2e21"]) == 0


def test_a_repeated_solve_option_is_named(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["generate", "gaussian", "--links", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["solve", str(out), "--method", "wmmse_frame", "--option", "slots=2", "--option", "slots=3"]) == 2
    assert capsys.readouterr().err == "error: slots: given twice\n"


def test_evaluate_names_a_flag_the_checkpoint_s_family_does_not_read(capsys):
    """Set but ignored (a bad value too), a flag of another family's suite is refused by name."""
    from pathlib import Path

    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    assert main(["evaluate", "--checkpoint", str(checkpoints / "power.ckpt"), "--users", "0", "--links", "3"]) == 2
    assert capsys.readouterr().err.startswith("error: users: the power family's evaluation takes --links, --instances")
    assert main(["evaluate", "--checkpoint", str(checkpoints / "prices.ckpt"), "--instances", "3"]) == 2
    assert capsys.readouterr().err.startswith("error: instances: the edge family's evaluation takes --suite")
    assert main(["evaluate", "--checkpoint", str(checkpoints / "sfl.ckpt"), "--instances", "10001"]) == 2
    assert capsys.readouterr().err.startswith("error: instances: must be an integer in [1, 10000]")
    assert main(["evaluate", "--checkpoint", str(checkpoints / "sfl.ckpt"), "--links", "1000000000"]) == 2
    assert capsys.readouterr().err.startswith("error: links: must be an integer in [1, 100000]")  # not "clients"
