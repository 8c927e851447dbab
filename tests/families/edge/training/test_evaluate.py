"""Evaluation: every method on a small suite, the table and the plots."""

import pytest
import torch

from gnnalloc.families.edge.nn.allocator import Allocator
from gnnalloc.families.edge.training.evaluate import evaluate_suite, format_table, write_plots


def test_suite_table_and_plots_with_search(tmp_path):
    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1)
    rows = evaluate_suite(
        model, suite="random", users=[40, 60], loads=[1.2], servers=6, gnn_repeats=1,
        search_rounds=2, log=lambda *_: None,
    )
    by = {(r.users, r.method): r for r in rows}
    assert {m for _, m in by} == {"gnn", "gnn+search", "dual", "exact", "proportional", "equal"}
    for users in (40, 60):
        assert by[users, "exact"].gap == pytest.approx(0.0, abs=1e-6)
        # The smoothed dual is near-exact here and far closer than either baseline.
        assert by[users, "dual"].gap <= 0.01 < by[users, "proportional"].gap
        assert by[users, "dual"].max_violation <= 1e-9
        # The search starts from the model's output and never lowers the objective.
        assert by[users, "gnn+search"].gap <= by[users, "gnn"].gap + 1e-12
        assert by[users, "gnn+search"].max_violation <= 1e-9
    # Every row carries a proof of its distance to the optimum, never below the true distance.
    for r in rows:
        assert r.gap - 1e-9 <= r.gap_bound, (r.users, r.method)
    table = format_table(rows)
    assert table.count("| gnn+search |") == 2 and table.count("| exact |") == 2
    assert table.count("| dual |") == 2
    written = write_plots(rows, tmp_path)
    assert [p.name for p in written] == ["utility_cdf.png", "gap_time_vs_size.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def _small_suite(users: int, servers: int, **options):
    """One random instance at load 1.0 through an untrained small model, quietly."""
    model = Allocator(hidden=16, heads=2, layers=1)
    return evaluate_suite(
        model, suite="random", users=[users], loads=[1.0], servers=servers, gnn_repeats=1,
        log=lambda *_: None, **options,
    )


def test_rows_above_the_exact_limit_still_get_a_proven_gap_bound():
    rows = _small_suite(30, 4, exact_max_users=10)
    assert "exact" not in {r.method for r in rows}
    for r in rows:
        assert r.gap is None and r.gap_bound is not None and r.gap_bound >= 0
    by = {r.method: r for r in rows}
    assert by["dual"].gap_bound < by["proportional"].gap_bound
    table = format_table(rows)
    assert "| n/a | " + f"{by['dual'].gap_bound:.4f}" in table


def test_negative_search_rounds_is_an_error_before_any_work():
    model = Allocator(hidden=16, heads=2, layers=1)
    with pytest.raises(ValueError, match="search_rounds"):
        evaluate_suite(model, suite="random", users=[20], loads=[1.0], servers=3, search_rounds=-1)


def test_dual_rows_can_be_skipped():
    rows = _small_suite(20, 3, dual_iterations=0)
    assert "dual" not in {r.method for r in rows}


def test_size_plot_uses_one_load_and_one_colour_per_method(tmp_path, monkeypatch):
    # The demo runs 816 users at three loads and the other sizes at 1.0 only: the size curve
    # must show the load-1.0 point at 816, not the mean of three loads.
    import matplotlib.axes
    import numpy as np

    from gnnalloc.families.edge.training.evaluate import EvalRow

    def row(users, load, method, gap, seconds):
        return EvalRow("eua", users, load, 1000, method, 0.0, gap, 0.6, 0.5, -1.0, 0.0, seconds,
                       None, np.zeros(3))

    rows = []
    for load, gap in ((0.6, 0.05), (1.0, 0.17), (1.4, 0.21)):
        rows += [row(816, load, "gnn", gap, 0.05), row(816, load, "exact", 0.0, 0.45)]
    for users, gap in ((100, 0.33), (5000, 0.19)):
        rows += [row(users, 1.0, "gnn", gap, 0.05), row(users, 1.0, "exact", 0.0, 1.0)]
    drawn = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((self.get_ylabel(), kwargs.get("label"), list(args[1]), kwargs.get("color")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    write_plots(rows, tmp_path)
    # Labels are set after plotting: the size figure's lines come after the CDF panels'.
    size_lines = drawn[-3:]  # gnn gap, gnn time, exact time
    assert size_lines[0][1] == "gnn" and size_lines[0][2] == pytest.approx([0.33, 0.17, 0.19])
    colours = {}
    for _, label, _, colour in drawn:
        assert colours.setdefault(label, colour) == colour


def test_a_price_model_runs_as_gnn_beside_the_share_model(tmp_path):
    from gnnalloc.families.edge._methods import shares_checkpoint, shipped_allocator

    shares = Allocator.from_checkpoint(shares_checkpoint())
    rows = evaluate_suite(
        shipped_allocator(), suite="random", users=[40], loads=[1.0], servers=6, gnn_repeats=1,
        penalty=25.0, alpha=2.0, shares=shares, search_rounds=2, log=lambda _: None,
    )
    by = {r.method: r for r in rows}
    assert set(by) == {"gnn", "gnn-shares", "dual", "exact", "proportional", "equal"}
    assert all((r.penalty, r.alpha) == (25.0, 2.0) for r in rows)
    # gnn carries its own proven bound, never below its true gap.
    assert by["gnn"].gap_bound is not None and by["gnn"].gap_bound >= by["gnn"].gap - 1e-9
    table = format_table(rows)
    assert "| 40 | 1 | 25 | 2 | gnn |" in table and "| gnn-shares |" in table
