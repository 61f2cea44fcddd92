"""Test-wide settings: deterministic hypothesis runs, no per-example deadline (shared CI).

BLAS is kept to one thread: on a loaded 2-core machine multi-threaded OpenBLAS makes
scipy's small L-BFGS-B fits several hundred times slower.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import pytest
import yaml
from hypothesis import settings

from precsim.codesign.study import default_study_path

matplotlib.use("Agg")
settings.register_profile("precsim", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("precsim")


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """Two deployments, a coarse grid and one what-if: a report in a few seconds."""
    doc = yaml.safe_load(default_study_path().read_text())
    doc["name"] = "tiny"
    doc["deployments"] = [d for d in doc["deployments"]
                          if d["profile"] in ("h100-sxm", "snapdragon-8-gen3")]
    doc["search"].update(N={"min": 5e8, "max": 2e10, "points": 17},
                         D={"min": 1e9, "max": 1e13, "points": 13}, bisection_steps=12,
                         train_formats=[16, 8, 4],
                         serve_formats=["W16A16", "W8A8", "W4A16-g128"])
    doc["whatif"] = [{"profile": "snapdragon-8-gen3", "vary": ["memory.lpddr5x.bandwidth=2x"]}]
    path = tmp_path_factory.mktemp("study") / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
