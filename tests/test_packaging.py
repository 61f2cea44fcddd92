"""The wheel installs one import package, `precsim`, with the profiles as package data."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_has_one_top_level_package_with_profiles(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("precsim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"precsim"}
    shipped = {Path(n).name for n in names if n.startswith("precsim/simulator/hw_profiles/")}
    expected = {p.name for p in (ROOT / "hw_profiles").glob("*.yaml")}
    assert expected and expected <= shipped
    runtimes = {Path(n).name for n in names if n.startswith("precsim/simulator/runtimes/")}
    assert {"reference.yaml", "vllm.yaml"} <= runtimes
    assert {p.name for p in (ROOT / "runtimes").glob("*.yaml")} <= runtimes
    assert "precsim/codesign/default_study.yaml" in names
    for package in ("lawcore", "simulator", "validation", "codesign", "simulator/des"):
        assert f"precsim/{package}/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "precsim = precsim.codesign.cli:main" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()
