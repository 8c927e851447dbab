"""The power family through the engine: the command line and the HTTP server read its formats,
run its methods (the learned one from a checkpoint) and name bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gnnalloc.cli import main
from gnnalloc.core import family_of, load_instance, solve
from gnnalloc.families.power import d2d, gaussian
from gnnalloc.families.power._model import PowerAllocator
from gnnalloc.serve import create_app


@pytest.fixture(scope="module")
def model() -> PowerAllocator:
    torch.manual_seed(0)
    return PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=2).eval()


@pytest.fixture
def checkpoint(tmp_path: Path, model: PowerAllocator) -> Path:
    path = tmp_path / "power.ckpt"
    model.save(path)
    return path


def test_cli_generate_solve_score_round_trip(tmp_path, checkpoint, capsys):
    instance_path = tmp_path / "g.json"
    assert main(["generate", "gaussian", "--links", "6", "--seed", "2", "--out", str(instance_path)]) == 0
    instance = load_instance(instance_path)
    assert family_of(instance).name == "power" and instance.num_links == 6
    out = tmp_path / "gnn.json"
    assert main(["solve", str(instance_path), "--method", "gnn", "--checkpoint", str(checkpoint),
                 "--reference", "wmmse", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "sum rate" in summary and "gnn" in summary
    assert main(["score", str(instance_path), str(out), "--reference", "wmmse"]) == 0
    document = json.loads(out.read_text())
    assert document["format"] == "gnnalloc.power-allocation/v1" and len(document["links"]) == 6


@pytest.mark.parametrize(
    ("edit", "field"),
    [(lambda d: d["links"][1].update(pmax=-1.0), "links[1].pmax"),
     (lambda d: d.update(noise=0.0), "noise"),
     (lambda d: d["interference"][0].update(rx="nobody"), "interference[0].rx")],
)
def test_cli_names_bad_power_fields(tmp_path, capsys, edit, field):
    document = gaussian(4, 0).to_dict()
    edit(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    assert main(["solve", str(path), "--method", "wmmse"]) == 2
    assert f"error: {field}:" in capsys.readouterr().err


def test_solve_dispatches_every_method_feasibly(model):
    instance = d2d(12, 3)
    for method in ("wmmse", "fp", "full_power", "greedy"):
        result = solve(instance, method)
        assert ((result.allocation.power >= 0) & (result.allocation.power <= instance.pmax)).all()
    learned = solve(instance, "gnn", allocator=model)
    assert learned.method == "gnn" and (learned.allocation.power <= instance.pmax).all()
    with pytest.raises(ValueError, match="refine_steps"):
        solve(instance, "gnn", allocator=model, refine_steps=-1)


def test_server_allocates_power_and_names_bad_fields(model):
    from fastapi.testclient import TestClient

    app = create_app(allocators={"power": model}, max_users=200)
    with TestClient(app) as client:
        document = d2d(15, 4).to_dict()
        for method in ("gnn", "wmmse", "full_power"):
            response = client.post(f"/v1/allocate?method={method}", json=document)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["allocation"]["format"] == "gnnalloc.power-allocation/v1"
            assert math.isfinite(body["metrics"]["objective"]) and body["metrics"]["max_violation"] == 0
        document["links"][2]["pmax"] = "high"
        response = client.post("/v1/allocate?method=wmmse", json=document)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "links[2].pmax"


@pytest.mark.parametrize(("flags", "field"), [(["--instances", "0"], "instances"), (["--links", "0"], "links")])
def test_evaluate_names_bad_sizes(checkpoint, tmp_path, capsys, flags, field):
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(tmp_path), *flags]) == 2
    assert capsys.readouterr().err.startswith(f"error: {field}: ")


@pytest.mark.parametrize("value", [1e308, 1.7e308])
def test_score_refuses_powers_that_overflow_the_metrics(tmp_path, capsys, value):
    """Powers near 1e308 overflow the rates: one named error line and exit 2, never inf/nan."""
    instance = gaussian(4, 0)
    instance_path = tmp_path / "g.json"
    instance_path.write_text(json.dumps(instance.to_dict()))
    document = {"format": "gnnalloc.power-allocation/v1",
                "links": [{"id": lid, "power": value} for lid in instance.link_ids]}
    allocation = tmp_path / "a.json"
    allocation.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["score", str(instance_path), str(allocation)]) == 2
    out, err = capsys.readouterr()
    assert "inf" not in out and "nan" not in out
    assert err.startswith("error: power: ") and err.count("\n") == 1, err
