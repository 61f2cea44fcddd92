"""Test-wide settings: deterministic hypothesis runs, no per-example deadline (shared CI)."""
import matplotlib
from hypothesis import settings

matplotlib.use("Agg")
settings.register_profile("precsim", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("precsim")
