"""Evaluation: every method on a small suite, the table and the plots."""

import pytest
import torch

from gnnalloc.nn.allocator import Allocator
from gnnalloc.training.evaluate import evaluate_suite, format_table, write_plots


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
    table = format_table(rows)
    assert table.count("| gnn+search |") == 2 and table.count("| exact |") == 2
    assert table.count("| dual |") == 2
    written = write_plots(rows, tmp_path)
    assert [p.name for p in written] == ["utility_cdf.png", "gap_time_vs_size.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_negative_search_rounds_is_an_error_before_any_work():
    model = Allocator(hidden=16, heads=2, layers=1)
    with pytest.raises(ValueError, match="search_rounds"):
        evaluate_suite(model, suite="random", users=[20], loads=[1.0], servers=3, search_rounds=-1)


def test_dual_rows_can_be_skipped():
    model = Allocator(hidden=16, heads=2, layers=1)
    rows = evaluate_suite(
        model, suite="random", users=[20], loads=[1.0], servers=3, gnn_repeats=1, dual_iterations=0,
        log=lambda *_: None,
    )
    assert "dual" not in {r.method for r in rows}
