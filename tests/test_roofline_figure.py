"""The roofline figure is readable: no two texts overlap on any shipped profile, peaks
carry units and thousands separators, the legend says what each mark is."""
import itertools

import pytest
from matplotlib import pyplot as plt

from precsim.simulator.cost import simulate
from precsim.simulator.profile_loader import builtin_profile_dir, load_profile
from precsim.simulator.roofline_plot import _spread, rate_text, roofline_figure

PROFILES = sorted(p.stem for p in builtin_profile_dir().glob("*.yaml"))


def test_rate_text_units_and_separators():
    assert rate_text(1.403e15, "int8") == "int8 1,403 TOP/s"
    assert rate_text(7.94e14, "bf16") == "bf16 794 TFLOP/s"
    assert rate_text(1.66e12, "fp32") == "fp32 1.66 TFLOP/s"
    assert rate_text(5.0e10, "ternary") == "ternary 50 GOP/s"


def test_spread_keeps_order_and_gap():
    placed = _spread([10.0, 11.0, 50.0, 12.0], gap=5.0)
    order = sorted(range(4), key=lambda i: placed[i])
    assert order == [0, 1, 3, 2]
    gaps = sorted(placed)
    assert all(b - a >= 5.0 - 1e-9 for a, b in zip(gaps, gaps[1:]))
    assert _spread([0.0, 100.0], gap=5.0) == [0.0, 100.0]      # already apart: unmoved


@pytest.mark.parametrize("name", PROFILES)
def test_no_text_overlaps(name):
    profile = load_profile(name)
    ops = simulate(profile, "qwen2.5-0.5b", "W8A8", 4, 256, 8).ops
    fig = roofline_figure(profile, ops, title=f"qwen2.5-0.5b W8A8 on {name}")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
        boxes.append(("legend", ax.get_legend().get_window_extent(renderer)))
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
            assert not box_a.overlaps(box_b), (name, a, b)
        texts = [t.get_text() for t in ax.texts]
        assert any(t.endswith(("FLOP/s", "OP/s")) for t in texts)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("memory ceiling") for t in legend)
        assert any(t.startswith("compute ceiling") for t in legend)
        assert {"op in prefill", "op in decode"} <= set(legend)
    finally:
        plt.close(fig)
