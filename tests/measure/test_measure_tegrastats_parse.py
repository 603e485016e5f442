import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.meter import total_power_mw
from edgebranchy.measure.power.tegrastats import parse_line


def _cases():
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).parent / "fixtures" / "tegrastats_lines.json").read_text())
    return doc["cases"], doc["no_rails"]


CASES, NO_RAILS = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c["board"].split(" (")[0] + f"-{i}" for i, c in enumerate(CASES)])
def test_fixture_lines_parse_to_the_expected_rails_and_total(case):
    s = parse_line(case["line"])
    assert s.rails_mw == pytest.approx(case["rails_mw"])
    assert list(s.rails_mw) == list(case["rails_mw"])  # nothing else taken, order kept
    assert s.total_mw == pytest.approx(case["total_mw"])
    assert s.total_rail == case["total_rail"]
    assert s.timestamp == case["timestamp"]


@pytest.mark.parametrize("line", NO_RAILS)
def test_lines_without_rails_raise_naming_the_line(line):
    with pytest.raises(EdgeBranchyError) as e:
        parse_line(line)
    assert "no power rails" in str(e.value) and line[:40] in str(e.value)


def test_long_line_is_truncated_in_the_message():
    line = "RAM 1/2MB " * 200
    with pytest.raises(EdgeBranchyError) as e:
        parse_line(line)
    assert len(str(e.value)) < 400 and "..." in str(e.value)


@pytest.mark.parametrize(
    "fragment",
    [
        "GPU@59C", "tj@53.968C", "CV0@-256C", "gpu@62.906C/114.5C", "EMC_FREQ 0%@1600", "GR3D_FREQ 0%@76",
        "GR3D_FREQ 63%@[621]", "GR3D_FREQ 0%@[0,0]", "APE 150", "NVENC 1164", "NVDEC off", "NVJPG 1164",
        "VIC_FREQ 0%@115", "RAM 1180/3965MB (lfb 4x4MB)", "SWAP 0/1982MB (cached 0MB)",
        "IRAM 0/252kB(lfb 252kB)", "CPU [2%@1479,1%@1479,off,off]", "MTS fg 0% bg 0%",
        "11-15-2024 08:38:09", "RAM 1180/3965", "SWAP 0/1982", "VDD_IN 4000/4000mW", "VDD_IN 4000mW",
        "VDD_IN 1/2/3/4", "VDD_IN 4000W/4000W", "NC 0mW/0mW",
    ],
)
def test_non_rail_fields_are_never_rails(fragment):
    with pytest.raises(EdgeBranchyError):
        parse_line(fragment)


def test_formats_bare_mw_three_values_negative():
    assert parse_line("POM_5V_IN 4520/4680").rails_mw == {"POM_5V_IN": 4520}
    assert parse_line("VDD_IN 5079mW/5079mW").rails_mw == {"VDD_IN": 5079}
    assert parse_line("VDD_GPU_SOC 5139mW/5139mW/5139mW").rails_mw == {"VDD_GPU_SOC": 5139}
    s = parse_line("VDD_GPU -392mW/-392mW/-380mW VDD_CPU_SOC_MSS 3924mW/3924mW/3950mW")
    assert s.rails_mw == {"VDD_GPU": -392, "VDD_CPU_SOC_MSS": 3924}
    assert s.total_mw == 3532 and s.total_rail == "sum"


def test_nc_channels_are_skipped_and_any_rail_name_is_read():
    s = parse_line("NC 0mW/0mW CV 120mW/100mW SOC 900mW/900mW NC 0mW/0mW VIN_SYS_5V0 1mW/1mW VDD_SYS_GPU 2mW/2mW")
    assert s.rails_mw == {"CV": 120, "SOC": 900, "VIN_SYS_5V0": 1, "VDD_SYS_GPU": 2}


@pytest.mark.parametrize(
    "rails, expected",
    [
        ({"VIN": 20, "POM_5V_IN": 10, "VDD_IN": 5, "X": 1}, (20, "VIN")),
        ({"POM_5V_IN": 10, "VDD_IN": 5, "X": 1}, (10, "POM_5V_IN")),
        ({"VDD_IN": 5, "X": 1}, (5, "VDD_IN")),
        ({"VIN_SYS_5V0": 5, "X": 1}, (6, "sum")),
    ],
)
def test_total_rule(rails, expected):
    assert total_power_mw(rails) == expected


def test_total_rail_override():
    line = CASES[6]["line"]  # Orin Nano JetPack 6
    assert parse_line(line, "sum").total_mw == 12479 + 4667 + 2817
    assert parse_line(line, "VDD_SOC").total_mw == 2817
    with pytest.raises(EdgeBranchyError, match="VIN"):
        parse_line(line, "VIN")


def test_repeated_rail_names_keep_every_reading():
    s = parse_line("CV 10/10 CV 20/20")
    assert s.rails_mw == {"CV": 10, "CV#2": 20} and s.total_mw == 30


def test_non_finite_values_raise():
    with pytest.raises(EdgeBranchyError):
        parse_line("VDD_IN " + "9" * 400 + "/1")


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_edgebranchy_error(text):
    try:
        s = parse_line(text)
    except EdgeBranchyError:
        return
    assert s.rails_mw and all(isinstance(v, float) for v in s.rails_mw.values())


_NOISE = [
    "RAM 1180/3965MB (lfb 4x4MB)", "SWAP 0/1982MB (cached 0MB)", "IRAM 0/252kB(lfb 252kB)",
    "CPU [2%@1479,1%@1479,off,off]", "EMC_FREQ 0%@1600", "GR3D_FREQ 63%@[621]", "APE 150", "NVENC 1164",
    "NVDEC off", "VIC_FREQ 0%@115", "GPU@59C", "tj@53.968C", "CV0@-256C", "MTS fg 0% bg 0%", "NC 0mW/0mW",
]
_RAIL_NAMES = ["VDD_IN", "POM_5V_IN", "VIN", "GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V", "VDD_CPU_GPU_CV",
               "VDDQ_VDD2_1V8AO", "VIN_SYS_5V0", "VDD_GPU", "VDD_SYS_DDR"]


@st.composite
def _lines(draw):
    names = draw(st.lists(st.sampled_from(_RAIL_NAMES), min_size=1, max_size=6, unique=True))
    unit = draw(st.sampled_from(["", "mW"]))
    nvalues = draw(st.sampled_from([2, 3]))
    rails = {}
    parts = []
    for name in names:
        vals = draw(st.lists(st.integers(-500, 60000), min_size=nvalues, max_size=nvalues))
        rails[name] = float(vals[0])
        parts.append((name, f"{name} " + "/".join(f"{v}{unit}" for v in vals)))
    noise = draw(st.lists(st.sampled_from(_NOISE), max_size=8))
    tokens = [p[1] for p in parts] + noise
    order = draw(st.permutations(range(len(tokens))))
    return " ".join(tokens[i] for i in order), rails


@settings(max_examples=300, deadline=None)
@given(_lines())
def test_generated_lines_give_exactly_the_generated_rails(case):
    line, rails = case
    s = parse_line(line)
    assert s.rails_mw == rails
    assert (s.total_mw, s.total_rail) == total_power_mw(rails)
