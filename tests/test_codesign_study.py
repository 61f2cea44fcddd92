"""precsim.codesign.study: the default study, and errors that name the file and the field."""
import json

import pytest
import yaml

from precsim.codesign.cli import main
from precsim.codesign.study import default_study_path, load_study, resolve_study
from precsim.simulator.errors import InputError


def write_study(tmp_path, **changes):
    """The default study's YAML with top-level (dotted) fields replaced."""
    doc = yaml.safe_load(default_study_path().read_text())
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def error_of(path) -> str:
    with pytest.raises(InputError) as info:
        study, source = load_study(path)
        resolve_study(study, source)
    return str(info.value)


def test_default_study_loads_and_resolves():
    study, source = load_study()
    rs = resolve_study(study, source)
    assert [p.name for p in rs.deploy_profiles] == ["h100-sxm", "snapdragon-8-gen3",
                                                    "apple-m2", "ternary-accel"]
    assert rs.train_profile.name == "h100-sxm"
    assert rs.target_loss == pytest.approx(rs.baseline_loss)
    assert study.search.train_formats[0].name == "16-bit"
    assert study.search.train_formats[-1].weight_bits == 1.58
    assert study.deployments[1].workload(study.workload).batch == 1
    assert study.deployments[0].workload(study.workload).slo.tpot == pytest.approx(0.05)


@pytest.mark.parametrize("changes,expected", [
    ({"objectiv": "time"}, "objectiv: unknown field (did you mean 'objective'?)"),
    ({"deployments.1.batch": -1}, "deployments[1].batch: Input should be greater than"),
    ({"target.target_loss": 2.9}, "target: Value error, give exactly one of"
     .replace("Value error, ", "")),
    ({"search.N.points": 1}, "search.N.points"),
    ({"search.D.min": 1e15}, "search.D: min"),
    ({"workload.slo.tpot": "fast"}, "workload.slo.tpot: cannot read 'fast'"),
    ({"objective": "speed"}, "objective: Input should be 'time', 'energy' or 'dollars'"),
    ({"whatif.0.profile": "a100-sxm-80gb"}, "whatif[0].profile: a100-sxm-80gb is neither"),
    ({"training": None, "deployments": []}, "give a training profile, deployments, or both"),
])
def test_schema_errors_name_file_and_field(tmp_path, changes, expected):
    path = write_study(tmp_path, **changes)
    message = error_of(path)
    assert message.startswith(str(path))
    assert expected in message


@pytest.mark.parametrize("changes,expected", [
    ({"deployments.2.profile": "apple-m9"}, "deployments[2].profile: unknown profile "
                                            "'apple-m9'"),
    ({"search.serve_formats": ["W16A16", "W4A16-g0"]}, "search.serve_formats[1]:"),
    ({"search.train_formats": [{"name": "w4a3", "weight_bits": 4, "act_bits": 3,
                                "kv_bits": 4}]}, "search.train_formats[0]: P_a = 3 bits"),
    ({"whatif.0.vary": ["memory.hbm.bandwith=2x"]}, "whatif[0].vary[0]: --vary "
                                                    "memory.hbm.bandwith"),
    ({"law": "kumar2025"}, "law: unknown law 'kumar2025'"),
    ({"law": "chinchilla"}, "search.serve_formats[1]: P_post given"),
])
def test_resolution_errors_name_file_and_field(tmp_path, changes, expected):
    path = write_study(tmp_path, **changes)
    message = error_of(path)
    assert message.startswith(str(path)) and expected in message


def test_bad_study_is_exit_code_2(tmp_path, capsys):
    path = write_study(tmp_path, **{"search.bisection_steps": 0})
    assert main(["report", "--study", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("precsim: error: ") and "search.bisection_steps" in err
    assert not (tmp_path / "r").exists()
    (tmp_path / "alias.yaml").write_text("a: &x 1\nb: *x\n")
    assert main(["plan", "--study", str(tmp_path / "alias.yaml")]) == 2


def _phone_study(tmp_path, **deployment):
    """One snapdragon deployment serving W4A16-g128 (default unit: the CPU; the NPU runs
    it too), a small search grid, no training."""
    doc = yaml.safe_load(default_study_path().read_text())
    for key in ("training", "whatif"):
        doc.pop(key, None)
    doc["deployments"] = [{"profile": "snapdragon-8-gen3", **deployment}]
    doc["search"].update(serve_formats=["W4A16-g128"], train_formats=[16, 8])
    doc["search"]["N"]["points"] = doc["search"]["D"]["points"] = 9
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _plan(path, capsys) -> dict:
    assert main(["plan", "--study", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["optimum"]


def test_deployment_prefill_unit_moves_the_serving_ttft(tmp_path, capsys):
    """prefill_unit: npu (Hexagon) prices prefill on the NPU: the same optimum's TTFT
    drops; decode stays on the CPU (its TPOT unchanged), as simulate --prefill-unit."""
    default = _plan(_phone_study(tmp_path), capsys)
    split = _plan(_phone_study(tmp_path, prefill_unit="npu"), capsys)
    assert split["N"] == default["N"] and split["serve_format"] == "W4A16-g128"
    assert split["ttft_s"] < default["ttft_s"] / 5
    assert split["tpot_s"] == pytest.approx(default["tpot_s"], rel=1e-12)
    study, source = load_study(_phone_study(tmp_path, unit="npu", decode_unit="cpu"))
    placed = study.deployments[0].placed(resolve_study(study, source).deploy_profiles[0])
    assert placed._placement["prefill"] == "npu" and placed._placement["decode"] == "cpu"


@pytest.mark.parametrize("deployment,expected", [
    ({"prefill_unit": "dsp"}, "deployments[0].prefill_unit: --prefill-unit dsp: profile "
                              "snapdragon-8-gen3 has no unit 'dsp'"),
    ({"unit": "gpu", "decode_unit": "tpu"}, "deployments[0].decode_unit: --decode-unit tpu"),
    ({"profile": "h100-sxm", "unit": "gpu"}, "deployments[0].unit: --unit gpu: profile "
                                             "h100-sxm has no compute_units"),
    ({"unit": 3}, "deployments[0].unit: Input should be a valid string"),
])
def test_deployment_bad_unit_is_exit_2_naming_file_deployment_and_field(
        tmp_path, capsys, deployment, expected):
    path = _phone_study(tmp_path, **deployment)
    assert main(["plan", "--study", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"precsim: error: {path}: ") and expected in err


def test_deployment_unit_that_cannot_run_a_serving_format_is_refused(tmp_path):
    """The NPU (QNN formats: int8, int4, fp16, bf16) cannot run ternary W1.58A8."""
    doc = yaml.safe_load(_phone_study(tmp_path, decode_unit="npu").read_text())
    doc["search"]["serve_formats"] = ["W4A16-g128", "W1.58A8"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    message = error_of(path)
    assert "deployments[0].decode_unit: --decode-unit npu: unit npu of snapdragon-8-gen3 " \
           "cannot run W1.58A8" in message
