"""precsim.simulator.units: strict quantity parsing and display (every dimension, prefixes, rejects)."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from precsim.simulator.units import UNITS, UnitError, accepted_units, format_quantity, parse_quantity


@pytest.mark.parametrize("text, dimension, expected", [
    ("80 GB", "bytes", 80e9),
    ("50 MiB", "bytes", 50 * 2**20),
    ("1 KiB", "bytes", 1024.0),
    ("1 kB", "bytes", 1000.0),
    ("1 KB", "bytes", 1000.0),
    ("2 TiB", "bytes", 2 * 2**40),
    ("3.35 TB/s", "bandwidth", 3.35e12),
    ("100 GB/s", "bandwidth", 100e9),
    ("1 GiB/s", "bandwidth", 2.0**30),
    ("989.4 TFLOP/s", "compute_rate", 989.4e12),
    ("1.979 POP/s", "compute_rate", 1.979e15),
    ("15.8 TOP/s", "compute_rate", 15.8e12),
    ("512 GFLOP/s", "compute_rate", 512e9),
    ("0.25 pJ", "energy", 0.25e-12),
    ("6.37 fJ", "energy", 6.37e-15),
    ("1 J", "energy", 1.0),
    ("2.5 pJ/B", "energy_per_byte", 2.5e-12),
    ("3.97 pJ/bit", "energy_per_byte", 3.97e-12 * 8),  # 8 bits per byte
    ("1 nJ/bit", "energy_per_byte", 8e-9),
    ("700 W", "power", 700.0),
    ("5 mW", "power", 5e-3),
    ("1.5 kW", "power", 1500.0),
    ("3.4 us", "time", 3.4e-6),
    ("3.4 \u00b5s", "time", 3.4e-6),  # MICRO SIGN
    ("3.4 \u03bcs", "time", 3.4e-6),  # GREEK SMALL LETTER MU
    ("15 ms", "time", 15e-3),
    ("1.83 GHz", "frequency", 1.83e9),
    ("903MHz", "frequency", 903e6),  # no space
    ("  1e3 B  ", "bytes", 1000.0),  # exponent, surrounding blanks
    (".5 W", "power", 0.5),
    ("-3 TB/s", "bandwidth", -3e12),  # sign parsed here; positivity is the schema's job
])
def test_parse_quantity_exact(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


def test_pj_per_bit_is_eight_times_pj_per_byte():
    assert parse_quantity("1 pJ/bit", "energy_per_byte") == 8 * parse_quantity(
        "1 pJ/B", "energy_per_byte")


def test_si_and_binary_prefixes_differ():
    assert parse_quantity("1 MiB", "bytes") / parse_quantity("1 MB", "bytes") == 1.048576


@pytest.mark.parametrize("value, dimension, expected", [
    (3.35, "bandwidth", "bare number 3.35"),
    (80, "bytes", "bare number 80"),
    ("3.35", "bandwidth", "bare number '3.35'"),
    ("3.35 GHz", "bandwidth", "is a frequency quantity; expected bandwidth"),
    ("700 W", "energy", "is a power quantity; expected energy"),
    ("80 GB", "bandwidth", "is a bytes quantity; expected bandwidth"),
    ("989 TFLOPS", "compute_rate", "did you mean 'TFLOP/s'?"),
    ("25 Gb/s", "bandwidth", "unknown unit 'Gb/s'"),  # bits are not bytes
    ("1e999 B", "bytes", "not a finite bytes quantity"),
    ("nan B", "bytes", "cannot read 'nan B'"),
    ("", "bytes", "cannot read ''"),
    ("GB", "bytes", "cannot read 'GB'"),
    (True, "bytes", "got bool"),
    (None, "power", "got NoneType"),
    (["1 W"], "power", "got list"),
])
def test_parse_quantity_rejects(value, dimension, expected):
    with pytest.raises(UnitError) as info:
        parse_quantity(value, dimension)
    assert expected in str(info.value)
    assert dimension in str(info.value)


def test_unknown_dimension_is_a_programming_error():
    with pytest.raises(KeyError):
        parse_quantity("1 B", "volume")


def test_long_input_gives_a_short_message_in_linear_time():
    # a unit padded with 100k blanks: the old regex backtracked quadratically here
    text = "1 a" + " " * 100_000 + "b"
    with pytest.raises(UnitError) as info:
        parse_quantity(text, "bytes")
    assert len(str(info.value)) < 200


def test_accepted_units_lists_every_spelling_shortest_first():
    units = accepted_units("bandwidth")
    assert set(units) == set(UNITS["bandwidth"])
    assert units[0] == "B/s"


@pytest.mark.parametrize("value, dimension, unit, expected", [
    (3.35e12, "bandwidth", None, "3.35 TB/s"),
    (80e9, "bytes", None, "80 GB"),
    (989.4e12, "compute_rate", "FLOP/s", "989.4 TFLOP/s"),
    (1978.9e12, "compute_rate", None, "1.979 POP/s"),
    (999.99e9, "bandwidth", None, "1 TB/s"),  # rounding rolls over to the next prefix
    (6.37e-15, "energy", None, "6.37 fJ"),
    (3.176e-11, "energy_per_byte", None, "31.76 pJ/B"),
    (700.0, "power", None, "700 W"),
    (0.99999, "power", None, "1 W"),
    (3.4e-6, "time", None, "3.4 us"),
    (1.83e9, "frequency", None, "1.83 GHz"),
    (0.0, "energy", None, "0 fJ"),
])
def test_format_quantity(value, dimension, unit, expected):
    assert format_quantity(value, dimension, unit=unit) == expected


def test_format_quantity_rejects_a_foreign_unit():
    with pytest.raises(ValueError):
        format_quantity(1.0, "bandwidth", unit="FLOP/s")


@given(dimension=st.sampled_from(sorted(set(UNITS) - {"count"})),  # a count has no unit
       value=st.floats(min_value=1e-17, max_value=1e17, allow_nan=False))
def test_format_then_parse_round_trips(dimension, value):
    parsed = parse_quantity(format_quantity(value, dimension), dimension)
    assert math.isclose(parsed, value, rel_tol=5e-4)  # four significant digits


@given(value=st.floats(min_value=1e3, max_value=1e18, allow_nan=False))
def test_flop_display_round_trips(value):
    assert math.isclose(parse_quantity(format_quantity(value, "compute_rate", unit="FLOP/s"),
                                       "compute_rate"), value, rel_tol=5e-4)


@pytest.mark.parametrize("text, seconds", [
    ("500 ms", 0.5), ("0.5 s", 0.5), ("0.5", 0.5), ("50 us", 50e-6), (" 2 ", 2.0)])
def test_flag_quantities_take_a_unit_or_a_bare_number_in_the_base_unit(text, seconds):
    from precsim.simulator.units import parse_flag_quantity
    assert parse_flag_quantity(text, "time") == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text, message", [
    ("5 GB", "is a bytes quantity; expected time"), ("fast", "cannot read"),
    ("inf", "not a finite time")])
def test_flag_quantities_reject_other_units_and_words(text, message):
    from precsim.simulator.units import UnitError, parse_flag_quantity
    with pytest.raises(UnitError, match=message):
        parse_flag_quantity(text, "time")


@pytest.mark.parametrize("command", [
    ["plan", "--slo-tpot", "SLO", "--slo-ttft", "SLO"],
    ["size", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant", "W4A16", "--qps", "1",
     "--slo-ttft", "SLO", "--slo-tpot", "SLO"]])
def test_plan_and_size_read_slo_flags_with_one_grammar(command, capsys):
    """Both spellings parse to the same seconds in both commands (`size` refused a unit,
    `plan` a bare number); the help shows an example of each."""
    from precsim.codesign.cli import build_parser
    parser = build_parser(command[0])
    for text in ("50 ms", "0.05"):
        args = parser.parse_args([text if a == "SLO" else a for a in command])
        assert args.slo_tpot == pytest.approx(0.05) and args.slo_ttft == pytest.approx(0.05)
    with pytest.raises(SystemExit):
        parser.parse_args([command[0], "--help"])
    assert "TIME, e.g. 50 ms or 0.05 (s)" in " ".join(capsys.readouterr().out.split())
