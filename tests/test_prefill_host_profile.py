"""benchmarks/prefill_validation.py's host rows price with the profile calibrated on this
machine when one is given (a file, or `host` on $PRECSIM_PROFILE_PATH) and say
"uncalibrated template" otherwise."""
import sys
from pathlib import Path

import yaml

from precsim.simulator.io import load_yaml_mapping
from precsim.validation.calibrate import template_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from prefill_validation import host_profile, profile_threads  # noqa: E402


def _calibrated(tmp_path: Path, threads: int = 1) -> Path:
    doc = load_yaml_mapping(template_path(), what="template")
    doc["description"] = (f"Calibrated with `precsim calibrate` on Some CPU, 2 logical CPUs, "
                          f"{threads} torch threads, AVX512, torch 2.13.0+cpu, now.")
    doc["compute"]["fp32"]["peak"] = {"value": "300 GFLOP/s",
                                      "measured": "best of torch.mm fp32 GEMMs (test)"}
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_without_a_calibrated_profile_the_group_says_uncalibrated_template(monkeypatch):
    monkeypatch.delenv("PRECSIM_PROFILE_PATH", raising=False)
    profile, group = host_profile()
    assert group == "host torch fp32 (uncalibrated template)"
    assert profile.compute["fp32"].peak.value == 192e9  # the template's [hw5] figure


def test_a_calibrated_file_is_used_and_named(tmp_path, monkeypatch):
    monkeypatch.delenv("PRECSIM_PROFILE_PATH", raising=False)
    path = _calibrated(tmp_path)
    profile, group = host_profile(str(path))
    assert profile.compute["fp32"].peak.value == 300e9
    assert group == f"host torch fp32 (calibrated: {path})"


def test_host_on_the_profile_path_is_found_as_other_commands_find_it(tmp_path, monkeypatch):
    path = _calibrated(tmp_path)
    monkeypatch.setenv("PRECSIM_PROFILE_PATH", str(path))
    profile, group = host_profile()
    assert profile.compute["fp32"].peak.value == 300e9
    assert "calibrated" in group and "uncalibrated" not in group


def test_one_threads_peak_is_the_profiles_over_the_threads_it_describes(tmp_path):
    template, _ = host_profile()
    assert profile_threads(template) == 2  # the template's 2-core slice
    one, _ = host_profile(str(_calibrated(tmp_path, threads=1)))
    assert profile_threads(one) == 1
