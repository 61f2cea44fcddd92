"""Package list for setuptools (metadata lives in pyproject.toml).

One import name, `precsim`: the source folders stay at the repository root
(simulator/, lawcore/, codesign/, validation/, hw_profiles/, runtimes/) and are mapped into it
here, so the wheel installs `precsim.simulator`, `precsim.lawcore`, `precsim.codesign`,
`precsim.validation` and the profiles and runtimes as package data `precsim.simulator.hw_profiles` and
`precsim.simulator.runtimes`.
"""
from setuptools import find_packages, setup

SUBPACKAGES = ("simulator", "lawcore", "codesign", "validation")

setup(
    packages=["precsim", "precsim.simulator.hw_profiles", "precsim.simulator.runtimes"]
    + [f"precsim.{name}" for name in find_packages(include=[f"{p}*" for p in SUBPACKAGES])],
    package_dir={"precsim": "precsim", "precsim.simulator.hw_profiles": "hw_profiles",
                 "precsim.simulator.runtimes": "runtimes",
                 **{f"precsim.{p}": p for p in SUBPACKAGES}},
)
