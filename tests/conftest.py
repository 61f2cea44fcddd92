"""Test-wide settings: deterministic hypothesis runs, no per-example deadline (shared CI).

BLAS is kept to one thread: on a loaded 2-core machine multi-threaded OpenBLAS makes
scipy's small L-BFGS-B fits several hundred times slower.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
from hypothesis import settings

matplotlib.use("Agg")
settings.register_profile("precsim", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("precsim")
