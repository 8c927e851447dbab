"""The power evaluation tables: ratios against the reference, the time-sharing front, and no
non-finite figure."""

import math

from gnnalloc.families.power import METHODS, wmmse
from gnnalloc.families.power._evaluate import (
    Suite, evaluate_power, format_frame_table, format_power_table, frame_rows,
)


def _methods():
    return {name: METHODS[name].run for name in ("wmmse", "full_power")}


def test_sum_rate_rows_carry_the_ratio_to_the_reference():
    rows = evaluate_power(_methods(), [Suite("gaussian", 6)], instances=2)
    by_method = {row.method: row for row in rows}
    assert by_method["wmmse"].ratio == 1.0
    assert 0.0 < by_method["full_power"].ratio < 1.0  # full power is far from WMMSE on the Gaussian channel
    assert all(row.instances == 2 for row in rows)


def test_negative_reference_utility_gives_no_ratio_and_the_table_prints_no_nan():
    # A minimum rate far above what the links reach: every α-fair utility is in the penalty region.
    suite = Suite("gaussian", 6, "alpha_fair", alpha=1.0, penalty=10.0, rate_min=50.0)
    rows = evaluate_power(_methods(), [suite], instances=2)
    assert all(row.ratio is None for row in rows)
    assert all(math.isfinite(row.utility) and row.utility < 0 for row in rows)
    table = format_power_table(rows)
    assert "nan" not in table.lower()
    for row, line in zip(rows, table.splitlines()[2:]):
        tokens = line[len(row.suite):].split()
        assert tokens[:2] == [row.method, "-"]  # the ratio column


def test_the_frame_rows_trade_sum_rate_for_the_bottom_of_the_rates():
    rows = frame_rows(lambda i: wmmse(i).allocation, [Suite("d2d", 20)], instances=2, fair_times=(0.0, 0.2, 1.0))
    assert [row.fair_time for row in rows] == [0.0, 0.2, 1.0]
    own, some, whole = rows
    assert own.sum_rate_kept == 1.0 and own.p5_rate == 0.0 and own.off > 0.2  # sum-rate WMMSE switches links off here
    assert 1.0 > some.sum_rate_kept > whole.sum_rate_kept > 0.5
    assert whole.p5_rate > some.p5_rate > 0.0 and whole.off < own.off
    table = format_frame_table(rows)
    assert len(table.splitlines()) == 2 + len(rows) and "nan" not in table.lower()
