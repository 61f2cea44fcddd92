"""Package list for setuptools (metadata lives in pyproject.toml).

hw_profiles/ sits at the repository root because profiles are data, not code; it is
mapped into the wheel as the data-only package `simulator.hw_profiles`.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["lawcore*", "simulator*", "validation*", "codesign*"])
    + ["simulator.hw_profiles"],
    package_dir={"simulator.hw_profiles": "hw_profiles"},
)
