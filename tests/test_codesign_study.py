"""precsim.codesign.study: the default study, and errors that name the file and the field."""
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
