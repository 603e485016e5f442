import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.table import calibration_table, format_table, frontier_table

VAL = {"accuracy": 0.9925, "cost": 0.25, "relative_cost": 0.2, "exit_fractions": [0.943, 0.057], "n": 5000}
TEST = {"accuracy": 0.991, "cost": 0.3, "relative_cost": 0.25, "exit_fractions": [0.938, 0.062], "n": 10000}


def test_format_table_aligns_columns():
    text = format_table([{"name": "a", "x": 1.5}, {"name": "long name", "x": 12.25, "y": None}],
                        [("name", "name", "s"), ("x", "value", ".2f"), ("y", "y", ".1f")])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "value", "y"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    # numbers right-aligned: the decimal points line up
    assert lines[2].index("1.50") + 1 == lines[3].index("12.25") + 2
    assert lines[2].startswith("a ") and lines[3].startswith("long name")
    assert lines[3].rstrip().endswith("-")   # None prints as "-"
    assert len({len(line.rstrip()) for line in lines[:2]}) == 1


def test_format_table_callable_format_and_no_columns():
    assert "7!" in format_table([{"a": 7}], [("a", "A", lambda v: f"{v}!")])
    with pytest.raises(EdgeBranchyError):
        format_table([{"a": 1}], [])


def test_calibration_table_side_by_side():
    text = calibration_table(VAL, TEST, [0.025])
    assert "0.025" in text and "(last)" in text
    assert "94.30" in text and "93.80" in text and "5.70" in text and "6.20" in text
    assert "99.25" in text and "99.10" in text
    assert "0.200" in text and "0.250" in text and "relative cost (0-1)" in text and "relative cost %" not in text
    assert "5.00x" in text and "4.00x" in text
    assert "test" in text.splitlines()[0]
    assert "expected speedup (" not in text    # no cost source: no claim where it comes from


def test_calibration_table_names_the_cost_source():
    macs = calibration_table(VAL, TEST, [0.025], cost_source="flops (MACs counted from the model)")
    assert "expected speedup (from MACs)" in macs
    measured = calibration_table(VAL, TEST, [0.025], cost_source="latency measured by bench on x86-cpu: r.json")
    assert "expected speedup (from measured costs)" in measured
    assert "(from MACs)" in frontier_table([{"thresholds": [0.1], "accuracy": 0.9, "relative_cost": 0.5}],
                                           cost_source="flops")


def test_calibration_table_validation_only():
    text = calibration_table(VAL, thresholds=[0.025])
    assert "test" not in text and "5.00x" in text and "5000" in text


def test_calibration_table_checks_counts():
    with pytest.raises(EdgeBranchyError):
        calibration_table(VAL, TEST, [0.1, 0.2])
    with pytest.raises(EdgeBranchyError):
        calibration_table(VAL, dict(TEST, exit_fractions=[0.3, 0.3, 0.4]), [0.1])


def test_frontier_table_thins_and_keeps_ends():
    frontier = [{"thresholds": [i / 100, i / 50], "accuracy": 0.5 + i / 200, "relative_cost": 0.1 + i / 100}
                for i in range(60)]
    text = frontier_table(list(reversed(frontier)), max_rows=5)
    body = text.splitlines()[2:]
    assert len(body) == 5
    assert body[0].split()[0] == "0.100" and body[-1].split()[0] == "0.690"   # cheapest first, both ends
    assert "10.00x" in body[0]
    assert len(frontier_table(frontier[:3]).splitlines()) == 5
    with pytest.raises(EdgeBranchyError):
        frontier_table(frontier, max_rows=1)
