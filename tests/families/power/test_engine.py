"""The power family through the engine: the command line and the HTTP server read its formats,
run its methods (the learned one from a checkpoint) and name bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnalloc.cli import main
from gnnalloc.core import family_of, load_instance, solve
from gnnalloc.families.power import (
    FRAME_FORMAT, PowerFrame, allocation_rates, d2d, gaussian, proportional_fair_frame, wmmse,
)
from gnnalloc.families.power._learned import gnn_allocate
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


def test_frame_methods_through_the_cli(tmp_path, checkpoint, capsys):
    """gnn_frame with --option: the frame document is written, read back and scored."""
    instance_path = tmp_path / "d.json"
    assert main(["generate", "d2d", "--links", "8", "--seed", "3", "--out", str(instance_path)]) == 0
    out = tmp_path / "frame.json"
    assert main(["solve", str(instance_path), "--method", "gnn_frame", "--checkpoint", str(checkpoint),
                 "--option", "slots=4", "--option", "fair_time=0.5", "--option", "alpha=2",
                 "--reference", "wmmse", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "time-shared slots (rates are frame averages)  4" in summary and "gap to wmmse" in summary
    document = json.loads(out.read_text())
    assert document["format"] == FRAME_FORMAT and len(document["slots"]) == 4
    assert [slot["time_share"] for slot in document["slots"]] == [0.625, 0.125, 0.125, 0.125]
    instance = load_instance(instance_path)
    expected = proportional_fair_frame(instance, gnn_allocate(checkpoint=checkpoint), slots=4, alpha=2.0, fair_time=0.5)
    read = [[link["power"] for link in slot["links"]] for slot in document["slots"]]
    assert read == expected.power.tolist()
    assert main(["score", str(instance_path), str(out)]) == 0
    assert "time-shared slots" in capsys.readouterr().out
    document["slots"][1]["time_share"] = 0.5
    out.write_text(json.dumps(document))
    assert main(["score", str(instance_path), str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: slots: the time shares must sum to 1")


def test_server_answers_frame_methods_with_frames(model):
    from fastapi.testclient import TestClient

    app = create_app(allocators={"power": model}, max_users=200)
    instance = d2d(15, 4)
    with TestClient(app) as client:
        listed = client.get("/v1/methods").json()["power"]
        assert listed["allocation_formats"] == ["gnnalloc.power-allocation/v1", FRAME_FORMAT]
        assert {"gnn_frame", "wmmse_frame"} <= set(listed["methods"])
        for method in ("gnn_frame", "wmmse_frame"):
            response = client.post(f"/v1/allocate?method={method}", json=instance.to_dict())
            assert response.status_code == 200, response.text
            body = response.json()
            frame = PowerFrame.from_dict(instance, body["allocation"])
            assert frame.slots == body["metrics"]["slots"] == 16
            assert body["metrics"]["max_violation"] == 0 and body["metrics"]["links_off"] == 0
            assert body["metrics"]["sum_rate"] == pytest.approx(allocation_rates(instance, frame).sum(), rel=1e-12)
        response = client.post("/v1/allocate?method=gnn_frame&slots=4&fair_time=0.5&alpha=2", json=instance.to_dict())
        assert response.status_code == 200, response.text
        frame = PowerFrame.from_dict(instance, response.json()["allocation"])
        expected = proportional_fair_frame(instance, gnn_allocate(allocator=model), slots=4, alpha=2.0, fair_time=0.5)
        assert np.array_equal(frame.power, expected.power) and frame.time_share.tolist() == [0.625, 0.125, 0.125, 0.125]
        for query, field in [("method=gnn_frame&slots=65", "slots"), ("method=gnn_frame&slots=0", "slots"),
                             ("method=wmmse_frame&fair_time=1.5", "fair_time"), ("method=gnn_frame&alpha=nan", "alpha"),
                             ("method=wmmse&fair_time=0.2", "fair_time"), ("method=gnn&gap_tol=0.1", "gap_tol"),
                             ("method=gnn_frame&p5_rate=-1", "p5_rate"), ("method=gnn_frame&p5_rate=0.1&fair_time=0.1", "p5_rate")]:
            response = client.post(f"/v1/allocate?{query}", json=instance.to_dict())
            assert response.status_code == 422 and response.json()["error"]["field"] == field, (query, response.text)
        body = client.post("/v1/allocate?method=gnn_frame&p5_rate=0.05", json=instance.to_dict()).json()
        assert body["metrics"]["rate_p5"] >= 0.05 and body["metrics"]["slots"] == 16
        # The server's model answers every slot (not the shipped one).
        body = client.post("/v1/allocate?method=gnn_frame", json=instance.to_dict()).json()
        expected = proportional_fair_frame(instance, gnn_allocate(allocator=model))
        assert np.array_equal(PowerFrame.from_dict(instance, body["allocation"]).power, expected.power)


def test_frame_methods_validate_their_options(model):
    instance = gaussian(5, 1)
    with pytest.raises(ValueError, match="^slots: "):
        solve(instance, "gnn_frame", allocator=model, slots=0)
    with pytest.raises(ValueError, match="^fair_time: "):
        solve(instance, "wmmse_frame", fair_time=1.5)
    with pytest.raises(ValueError, match="^max_iter: "):
        solve(instance, "wmmse_frame", max_iter=-1)
    with pytest.raises(ValueError, match="^gap_tol: "):
        solve(instance, "wmmse_frame", gap_tol=0.1)
    result = solve(instance, "wmmse_frame", slots=3, seed=2)
    expected = proportional_fair_frame(instance, lambda i: wmmse(i, seed=2).allocation, slots=3)
    assert result.method == "wmmse_frame" and result.upper_bound is None and result.seconds > 0
    assert np.array_equal(result.allocation.power, expected.power)


def test_openapi_shows_both_power_allocation_formats():
    from fastapi.testclient import TestClient

    from gnnalloc.families.power import MAX_SLOTS
    from gnnalloc.families.power._schema import PowerFrameV1

    components = TestClient(create_app()).get("/openapi.json").json()["components"]["schemas"]
    assert {"PowerInstanceV1", "PowerAllocationV1", "PowerFrameV1", "PowerFrameSlot"} <= set(components)
    assert components["PowerFrameV1"]["properties"]["slots"]["maxItems"] == MAX_SLOTS
    # The model accepts what the library writes.
    instance = d2d(6, 1)
    PowerFrameV1.model_validate(proportional_fair_frame(instance, lambda i: wmmse(i).allocation, slots=3).to_dict(instance))
