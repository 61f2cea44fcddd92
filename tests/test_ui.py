"""The explorer's functions without a browser: same numbers as the CLI, safe uploads,
clear errors, Dash imported only by `precsim ui`."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from precsim.codesign.cli import main
from precsim.simulator.io import json_text
from precsim.codesign import law_search
from precsim.codesign.ui import compute
from precsim.lawcore.errors import LawInputError
from precsim.simulator.errors import InputError
from precsim.simulator.io import MAX_YAML_BYTES
from precsim.simulator.profile_loader import load_profile

ROOT = Path(__file__).resolve().parent.parent


def cli_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)
    return json.loads(out.getvalue())


def upload(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def test_cli_help_does_not_import_dash():
    code = ("import sys; from precsim.codesign.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('dash', 'plotly', 'flask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.strip() == "[]"


def test_simulate_view_equals_cli_json():
    view = compute.simulate_view("l4", "llama-3.2-1b", "W4A16-g128", 4, 256, 64)
    assert json.loads(json_text(view["json"])) == cli_json(view["argv"])
    assert view["argv"][:3] == ["simulate", "--profile", "l4"]
    levels = {p["level"] for p in view["roofline"]["points"]}
    assert levels <= {"smem", "l2", "gddr6"} and "gddr6" in levels
    assert view["ops"]["time_s"].sum() > 0


def test_simulate_view_under_a_runtime_equals_cli_json():
    view = compute.simulate_view("l4", "llama-3.2-1b", "W4A16-g128", 1, 128, 16, (), 1, 1, 1,
                                 "torch-compile")
    assert view["argv"][-3:] == ["--runtime", "torch-compile", "--json"]
    assert json.loads(json_text(view["json"])) == cli_json(view["argv"])
    assert view["json"]["request"]["runtime"] == "torch-compile"


def test_simulate_view_with_a_parallel_layout_equals_cli_json():
    """tp 2 of Llama-3-70B on H100s: the page's numbers are `simulate --tp 2 --json`."""
    view = compute.simulate_view("h100-sxm", "llama-3-70b", "BF16", 8, 512, 128, (), 2)
    assert "--tp" in view["argv"]
    assert json.loads(json_text(view["json"])) == cli_json(view["argv"])
    assert view["json"]["request"]["layout"]["tp"] == 2
    single = compute.simulate_view("h100-sxm", "llama-3-70b", "BF16", 8, 512, 128)
    assert not single["json"]["totals"]["fits"]          # 141 GB of weights on one GPU
    assert view["json"]["totals"]["fits"] and view["json"]["totals"]["tpot_s"] > 0


@pytest.mark.parametrize("field,args", [
    ("--batch", (0, 512, 128)), ("--gen", (1, 512, None))])
def test_simulate_view_bad_number_names_the_field(field, args):
    with pytest.raises(InputError, match=field):
        compute.simulate_view("l4", "llama-3.2-1b", "W16A16", *args)


def test_plan_view_equals_cli_plan():
    view = compute.plan_view(None, (), "ternary-accel", 3.0)
    cli = cli_json(view["argv"])
    assert view["argv"] == ["plan", "--deploy-profile", "ternary-accel", "--target-loss",
                            "3.0", "--json"]
    drop = ("elapsed_s",)  # wall time of the search
    assert {k: v for k, v in json.loads(json_text(view["json"])).items() if k not in drop} \
        == {k: v for k, v in cli.items() if k not in drop}


def _without_elapsed(doc: dict) -> dict:
    return {k: v for k, v in json.loads(json_text(doc)).items() if k != "elapsed_s"}


def test_plan_view_shares_the_law_half_and_reprices_what_changed(monkeypatch):
    """A second deployment at the same target solves no law again; a changed control
    (lifetime tokens) re-prices serving: both still equal the CLI's plan."""
    compute.clear_caches()
    solved = []
    solve = law_search.solve_law
    monkeypatch.setattr(law_search, "solve_law", lambda p: solved.append(p) or solve(p))
    compute.plan_view(None, (), "ternary-accel", 3.0)
    assert solved
    first = len(solved)
    view = compute.plan_view(None, (), "apple-m2", 3.0)
    more = compute.plan_view(None, (), "ternary-accel", 3.0, tokens=1e13)
    assert len(solved) == first and "--tokens-served" in more["argv"]
    for v in (view, more):
        assert _without_elapsed(v["json"]) == _without_elapsed(cli_json(v["argv"]))
    compute.clear_caches()


@pytest.mark.parametrize("kwargs,message", [
    ({"target_loss": -1.0}, "argument --target-loss: expected a positive finite number"),
    ({"tokens": 0.0}, "argument --tokens-served: expected a positive finite number"),
    ({"deploy": "no-such-chip"}, "unknown profile 'no-such-chip'"),
])
def test_plan_view_bad_control_names_the_flag(kwargs, message):
    args = {"deploy": "h100-sxm", **kwargs}
    with pytest.raises(InputError, match=message):
        compute.plan_view(None, (), args.pop("deploy"), **args)


def test_whatif_specs_name_the_profile_fields():
    h100 = load_profile("h100-sxm")
    assert compute.WhatIf().specs(h100) == []
    assert compute.WhatIf(2.0, 0.5, ("fp8_e4m3", "int4")).specs(h100) == [
        "memory.hbm.bandwidth=2x", "memory.smem.capacity=0.5x", "memory.l2.capacity=0.5x",
        "compute.int4=native"]  # fp8_e4m3 is already native on H100: skipped
    assert compute.WhatIf(sram_x=2.0).specs(load_profile("apple-m2")) == []  # no SRAM level
    # a native engine switched off: fp8 on h100 runs through a bf16 fallback
    assert compute.WhatIf(emulated=("fp8_e4m3", "int4")).specs(h100) == [
        "compute.fp8_e4m3=emulated"]   # int4 is not native on h100: nothing to remove


def test_law_view_equals_cli_and_rejects_bad_budget():
    view = compute.law_view("kumar2024", "3e22")
    assert view["json"] == cli_json(view["argv"])
    grid = view["grid"]
    assert grid["loss"].shape == (grid["N"].size, grid["P"].size)
    with pytest.raises(LawInputError, match="does not model training precision"):
        compute.law_view("chinchilla", "1e21")  # as `precsim law optimal` refuses it
    with pytest.raises(InputError, match="--compute"):
        compute.law_view("kumar2024", "lots")


def test_compare_profiles_shows_value_and_source():
    table = compute.compare_profiles([load_profile("h100-sxm"), load_profile("l4")])
    row = table.set_index("field").loc["memory[hbm].capacity"]
    assert row["h100-sxm"] == "80 GiB"   # binary DRAM (see the profile's derivation)
    assert row["h100-sxm source"].startswith("source: [hopper] 80 GB HBM3")
    assert row["l4"] == "-"  # L4 has no HBM level


def test_upload_is_bounded_and_stays_in_its_folder(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    with pytest.raises(InputError, match="larger than 10 bytes"):
        compute.save_upload(upload(b"x" * 11), folder, "f.json", 10, "config 'a.json'")
    with pytest.raises(InputError, match="not valid base64"):
        compute.save_upload("data:x;base64,@@@", folder, "f.json", 10, "config 'a.json'")
    assert list(folder.iterdir()) == []
    path = compute.save_upload(upload(b"{}"), folder, "f.json", 10, "config '../../x'")
    assert path == folder / "f.json" and list(folder.iterdir()) == [path]


@pytest.mark.parametrize("text,expected", [
    ("name: !!python/object:os.system x\n", "tag"),
    ("name: &a x\nkind: *a\n", "alias"),
])
def test_uploaded_profile_checked_by_the_safe_loader(tmp_path, text, expected):
    entry = compute.check_uploaded_profile(upload(text.encode()), "evil.yaml", tmp_path)
    assert not entry["ok"] and entry["file"] == "evil.yaml"
    assert entry["error"].startswith("upload evil.yaml:") and expected in entry["error"]
    assert {p.name for p in tmp_path.iterdir()} == {"uploaded-profile.yaml"}


def test_uploaded_profile_too_large_is_refused(tmp_path):
    with pytest.raises(InputError, match=f"larger than {MAX_YAML_BYTES} bytes"):
        compute.check_uploaded_profile(upload(b"#" * (MAX_YAML_BYTES + 1)), "big.yaml",
                                       tmp_path)


def test_uploaded_profile_ok(tmp_path):
    doc = (ROOT / "hw_profiles" / "l4.yaml").read_text().replace("name: l4", "name: my-l4", 1)
    entry = compute.check_uploaded_profile(upload(doc.encode()), "mine.yaml", tmp_path)
    assert entry["ok"] and entry["name"] == "my-l4" and entry["profile"].name == "my-l4"


def test_model_from_hugging_face_cache(tmp_path, monkeypatch):
    snap = tmp_path / "models--org--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    cfg = dict(model_type="llama", hidden_size=256, intermediate_size=512,
               num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=4,
               vocab_size=1000, max_position_embeddings=512)
    (snap / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert compute.model_ref("hf-cache", "org/tiny", None) == str(snap / "config.json")
    with pytest.raises(InputError, match="not in the local Hugging Face cache"):
        compute.model_ref("hf-cache", "org/other", None)
    with pytest.raises(InputError, match="after uploading"):
        compute.model_ref("upload", None, None)
    assert compute.model_ref("llama-3-8b", None, None) == "llama-3-8b"


def test_attempt_turns_errors_into_messages():
    from precsim.codesign.ui.widgets import attempt

    def boom(kind):
        raise kind("bad --batch")
    assert attempt(boom, InputError) == (None, "error: bad --batch")
    assert attempt(boom, ZeroDivisionError) == (None, "internal error: ZeroDivisionError: "
                                                      "bad --batch")
    assert attempt(int, "3") == (3, None)


@pytest.mark.parametrize("argv,message", [
    (["ui", "--port", "0"], "--port: expected 1 to 65535, got 0"),
    (["ui", "--study", "missing.yaml"], "missing.yaml"),
])
def test_ui_command_bad_input_exits_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_app_builds_with_all_views():
    from precsim.codesign.ui.app import Context, create_app

    ctx = Context()
    with ctx.upload_dir:
        app = create_app(ctx)
        outputs = " ".join(app.callback_map)
        for id_ in ("sim-out", "cd-focus", "cd-table", "law-out", "prof-table"):
            assert id_ in outputs
        assert not app.server.debug


def test_page_error_shows_a_message(monkeypatch):
    from precsim.codesign.ui import app as ui_app

    shown = {}
    monkeypatch.setattr(ui_app.dash, "set_props", lambda id_, props: shown.update(
        {id_: props}))
    ui_app.page_error(KeyError("ttft_s"))
    assert shown["page-error"]["children"] == "internal error: KeyError: 'ttft_s'"
    ui_app.page_error(InputError("--batch must be at least 1, got 0"))
    assert shown["page-error"]["children"] == "error: --batch must be at least 1, got 0"


def test_laws_view_shades_the_presets_fitted_domain():
    """lawcore's Domain (N, w_bits ranges) is what the Laws view shades."""
    from precsim.codesign.ui.laws_view import _domain_box
    from precsim.lawcore import get_law
    assert _domain_box(get_law("kumar2024").domain) == ((3.0, 16.0), (3e7, 1.7e9))


def test_whatif_specs_on_a_soc_edit_its_units():
    """On a SoC the engines live in compute_units: 'on' adds the type to every unit that
    lacks it and whose runtimes take it (`formats`), 'off' removes it from every unit
    that has it; the planner's variants accept the specs."""
    from precsim.codesign.variants import profile_variants
    phone = load_profile("snapdragon-8-gen3")
    on = compute.WhatIf(native=("fp8_e4m3", "int4")).specs(phone)
    # npu formats: int8, int4, fp16, bf16 (no fp8); cpu's include int4, not fp8
    assert on == ["compute_units.gpu.compute.fp8_e4m3=native",
                  "compute_units.gpu.compute.int4=native",
                  "compute_units.npu.compute.int4=native",
                  "compute_units.cpu.compute.int4=native"]
    off = compute.WhatIf(emulated=("int8", "bf16")).specs(phone)
    assert off == ["compute_units.npu.compute.int8=emulated",
                   "compute_units.cpu.compute.int8=emulated"]  # bf16 native on no unit
    both = profile_variants(phone, on + off)[-1][1]
    for unit in ("npu", "cpu"):
        view = both.for_unit(unit)
        assert view.native("int4") and not view.native("int8")
        # the rule that ran int4 on the int8 engine followed int8 to its fallback type
        assert "int4" not in view.fallbacks and view.fallbacks["int8"].execute_as == "fp16"
    assert both.for_unit("gpu").native("fp8_e4m3")


def test_codesign_callback_on_a_soc_with_native_off(tmp_path):
    """The Co-design tab's callback for a snapdragon deployment with int8 engines off."""
    import yaml
    from precsim.codesign.study import default_study_path
    from precsim.codesign.ui import codesign_view
    from precsim.codesign.ui.app import Context

    doc = yaml.safe_load(default_study_path().read_text())
    doc.pop("training"), doc.pop("whatif", None)
    doc["deployments"] = [{"profile": "snapdragon-8-gen3"}]
    doc["search"].update(serve_formats=["W8A8", "W4A16-g128"], train_formats=[16, 8])
    doc["search"]["N"]["points"] = doc["search"]["D"]["points"] = 9
    study = tmp_path / "phone.yaml"
    study.write_text(yaml.safe_dump(doc))

    callbacks = {}

    class App:
        def callback(self, *args, **kwargs):
            return lambda fn: callbacks.setdefault(fn.__name__, fn)

    ctx = Context(study=str(study))
    with ctx.upload_dir:
        codesign_view.register(App(), ctx)
        _, err, style, done = callbacks["_update_focus"](
            "snapdragon-8-gen3", None, 1, 1, [], ["int8"], None, None)
        assert err == "" and style["display"] == "none"
        table = callbacks["_update_table"](done)
    row = table.data[0]
    assert row["profile"] == "snapdragon-8-gen3" and row["train"] is not None
    view = compute.plan_view(str(study), (), "snapdragon-8-gen3",
                             whatif=compute.WhatIf(emulated=("int8",)))
    assert view["specs"] == ["compute_units.npu.compute.int8=emulated",
                             "compute_units.cpu.compute.int8=emulated"]
    assert view["argv"][:3] == ["whatif", "--profile", "snapdragon-8-gen3"]
