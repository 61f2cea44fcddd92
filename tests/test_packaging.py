"""The wheel ships the hardware profiles as package data and the `precsim` script."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_profiles_and_packages(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("precsim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("simulator/hw_profiles/")}
    expected = {p.name for p in (ROOT / "hw_profiles").glob("*.yaml")}
    assert expected and expected <= shipped
    for package in ("lawcore", "simulator", "validation", "codesign"):
        assert f"{package}/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "precsim = codesign.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
