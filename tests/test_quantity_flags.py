"""One quantity grammar (simulator.units.parse_flag_quantity) for flags and study YAML:
a number with a unit or a bare number in the documented base unit; one SLO class."""
import argparse
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from precsim.codesign import study as study_module
from precsim.codesign.cli import build_parser
from precsim.codesign.variants import profile_variants
from precsim.simulator.des import sizing
from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.slo import SLO
from precsim.simulator.units import BASE_UNITS, UnitError, parse_flag_quantity
from tests.test_codesign_study import write_study

PLAN = ["plan"]
SIZE = ["size", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--quant", "BF16",
        "--slo-ttft", "1 s", "--slo-tpot", "50 ms"]


def _parse(argv):
    return build_parser(argv[0]).parse_args(argv)


def _rejected(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        _parse(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("text,dimension,value", [
    ("2.5 $/h", "price_per_hour", 2.5), ("2.5", "price_per_hour", 2.5),
    ("0.05 $/min", "price_per_hour", 3.0), ("60 $/day", "price_per_hour", 2.5),
    ("0.12 $/kWh", "energy_price", 0.12), ("120 $/MWh", "energy_price", 0.12),
    ("20/s", "rate", 20.0), ("1200/min", "rate", 20.0), ("20 req/s", "rate", 20.0),
    ("72000/h", "rate", 20.0), ("20", "rate", 20.0),
    ("2x", "ratio", 2.0), ("50%", "ratio", 0.5), ("0.5", "ratio", 0.5),
    ("1e12", "count", 1e12), ("1.5B", "count", 1.5e9), ("2 T", "count", 2e12),
    ("70M", "count", 7e7), ("500 ms", "time", 0.5), ("0.5", "time", 0.5),
    ("80 GiB", "bytes", 80 * 2**30), (0.25, "time", 0.25), (3, "count", 3.0)])
def test_grammar_unit_and_bare_number(text, dimension, value):
    assert parse_flag_quantity(text, dimension) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text,dimension,message", [
    ("2.5 $/kWh", "price_per_hour", "is a energy_price quantity; expected price_per_hour"),
    ("20 ms", "rate", "is a time quantity; expected rate"),
    ("fast", "time", "cannot read 'fast'"), ("2 y", "ratio", "unknown unit 'y'"),
    ("inf", "count", "not a finite count"), (True, "time", "expected a time quantity")])
def test_grammar_rejects_with_a_clear_message(text, dimension, message):
    with pytest.raises(UnitError, match=message.replace("$", r"\$")):
        parse_flag_quantity(text, dimension)


@given(st.floats(min_value=1e-3, max_value=1e6))
def test_per_minute_is_sixty_per_hour_of_the_same_price(price):
    assert parse_flag_quantity(f"{price!r} $/min", "price_per_hour") == \
        pytest.approx(60 * parse_flag_quantity(f"{price!r}", "price_per_hour"), rel=1e-12)


@pytest.mark.parametrize("flag,text,attr,value", [
    ("--dollars-per-device-hour", "2.5 $/h", "dollars_per_device_hour", 2.5),
    ("--dollars-per-device-hour", "3", "dollars_per_device_hour", 3.0),
    ("--train-dollars-per-device-hour", "0.04 $/min", "train_dollars_per_device_hour", 2.4),
    ("--dollars-per-kwh", "0.12 $/kWh", "dollars_per_kwh", 0.12),
    ("--dollars-per-kwh", "0", "dollars_per_kwh", 0.0),
    ("--tokens-served", "1e12", "tokens_served", 1e12),
    ("--tokens-served", "1T", "tokens_served", 1e12),
    ("--baseline-n", "1.5B", "baseline_n", 1.5e9),
    ("--slo-tpot", "50 ms", "slo_tpot", 0.05), ("--slo-tpot", "0.05", "slo_tpot", 0.05)])
def test_plan_flags(flag, text, attr, value):
    assert getattr(_parse(PLAN + [flag, text]), attr) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("argv,value", [(["--qps", "1200/min"], 20.0),
                                        (["--qps", "20"], 20.0), (["--qps", "20/s"], 20.0)])
def test_size_rate_flag(argv, value):
    assert _parse(SIZE + argv).qps == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("argv,message", [
    (PLAN + ["--dollars-per-device-hour", "2.5 $/kWh"],
     "argument --dollars-per-device-hour: '2.5 $/kWh' is a energy_price quantity"),
    (PLAN + ["--dollars-per-device-hour", "-1"],
     "argument --dollars-per-device-hour: expected a non-negative finite number"),
    (PLAN + ["--dollars-per-kwh", "cheap"], "argument --dollars-per-kwh: cannot read 'cheap'"),
    (PLAN + ["--tokens-served", "0"], "argument --tokens-served: expected a positive finite"),
    (PLAN + ["--tokens-served", "1 Q"], "argument --tokens-served: unknown unit 'Q'"),
    (PLAN + ["--slo-tpot", "0"], "argument --slo-tpot: expected a positive finite number"),
    (SIZE + ["--qps", "20 ms"], "argument --qps: '20 ms' is a time quantity; expected rate")])
def test_flags_reject_naming_the_flag(capsys, argv, message):
    assert message in _rejected(capsys, argv)


@pytest.mark.parametrize("command,flag", [
    ("plan", "--dollars-per-device-hour PRICE"), ("plan", "--dollars-per-kwh PRICE"),
    ("plan", "--tokens-served T"), ("plan", "--slo-ttft TIME"), ("size", "--qps RATE"),
    ("serve", "--qps RATE")])
def test_help_shows_an_example_with_a_unit_and_the_bare_form(capsys, command, flag):
    with pytest.raises(SystemExit):
        build_parser(command).parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.rindex(flag)   # the help entry comes after the usage line
    assert ", e.g. " in text[start:start + 200] and " or " in text[start:start + 200]


def test_study_yaml_and_flags_give_the_same_values(tmp_path):
    path = write_study(tmp_path, **{"dollars_per_kwh": "120 $/MWh",
                                    "training.dollars_per_device_hour": "0.05 $/min",
                                    "workload.tokens_served": "1T",
                                    "workload.slo": {"tpot": "0.1", "ttft": 2}})
    study, _ = study_module.load_study(path)
    args = _parse(PLAN + ["--dollars-per-kwh", "120 $/MWh", "--train-dollars-per-device-hour",
                          "0.05 $/min", "--tokens-served", "1T", "--slo-tpot", "0.1",
                          "--slo-ttft", "2"])
    assert study.dollars_per_kwh == args.dollars_per_kwh == pytest.approx(0.12, rel=1e-15)
    assert study.training.dollars_per_device_hour == args.train_dollars_per_device_hour == 3.0
    assert study.workload.tokens_served == args.tokens_served == 1e12
    assert (study.workload.slo.tpot, study.workload.slo.ttft) == (args.slo_tpot, args.slo_ttft)


def test_study_yaml_price_error_names_the_field(tmp_path):
    path = write_study(tmp_path, **{"dollars_per_kwh": "0.12 $/h"})
    with pytest.raises(InputError, match=r"dollars_per_kwh: '0.12 \$/h' is a price_per_hour"):
        study_module.load_study(path)


def test_one_slo_class():
    assert study_module.SLO is SLO is sizing.SLO
    slo = SLO(tpot="50 ms", ttft=1)
    assert (slo.tpot, slo.ttft) == (0.05, 1.0)
    summary = {"rejected": 0, "served": 5, "ttft_p99_s": 0.9, "tpot_p99_s": 0.05}
    assert slo.met(summary)
    assert not SLO(tpot=0.049, ttft=1).met(summary)
    assert SLO(tpot=0.05).met(summary)        # no TTFT target
    assert not slo.met({**summary, "rejected": 1})


def test_slo_old_field_names_are_refused():
    with pytest.raises(InputError, match="ttft_s: unknown field"):
        SLO.of(ttft_s=1.0, tpot_s=1.0)


def test_vary_ratios_use_the_ratio_grammar():
    h100 = load_profile("h100-sxm")
    bw = [p.main_memory.bandwidth_bytes_per_s
          for _, p in profile_variants(h100, ["memory.hbm.bandwidth=150%,2 x"])]
    assert bw == pytest.approx([3.35e12, 1.5 * 3.35e12, 2 * 3.35e12], rel=1e-12)
    with pytest.raises(InputError, match="--vary memory.hbm.bandwidth: ratio '0x'"):
        profile_variants(h100, ["memory.hbm.bandwidth=0x"])
    with pytest.raises(InputError, match="--vary memory.hbm.bandwidth: unknown unit 'yx'"):
        profile_variants(h100, ["memory.hbm.bandwidth=2 yx"])


#: flag names that are a duration, a size in bytes, a rate or a price
_QUANTITY_NAME = re.compile(r"(^|-)(slo|qps|rate|dollars|price|kwh|seconds|time|duration|"
                            r"bytes|gib|memory|bandwidth|hour)(-|$)")


def _all_flags():
    """(command path, action) of every option of every registered sub-parser."""
    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*path, name])
            elif action.option_strings:
                yield " ".join(path), action
    return list(walk(build_parser(None), []))


def test_every_quantity_flag_uses_the_shared_parser_and_shows_an_example():
    flags = _all_flags()
    quantity = [(cmd, a) for cmd, a in flags if getattr(a.type, "dimension", None)]
    named = [(cmd, a) for cmd, a in flags
             if _QUANTITY_NAME.search(a.option_strings[-1].lower().lstrip("-"))
             and "tokens" not in a.option_strings[-1]]
    assert named and len(quantity) >= len(named)
    for cmd, action in named:
        assert getattr(action.type, "dimension", None), (cmd, action.option_strings)
    for cmd, action in quantity:
        dim = action.type.dimension
        assert "e.g." in action.help and f"({BASE_UNITS[dim]})" in action.help, \
            (cmd, action.option_strings, action.help)
    # the law commands' counts go through it too (no second count parser)
    assert {(cmd, a.option_strings[-1]) for cmd, a in quantity} >= {
        ("law predict", "--N"), ("law optimal", "--compute"), ("plan", "--tokens-served"),
        ("size", "--slo-ttft"), ("serve", "--qps"), ("plan", "--dollars-per-kwh")}
