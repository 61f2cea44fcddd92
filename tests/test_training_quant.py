"""Fake quantization (grids, STE), PTQ round-to-nearest, the model's parameter count."""
import numpy as np
import pytest
import torch

from precsim.simulator.errors import InputError
from precsim.validation.training.model import ModelShape, TinyLM, TrainPrecision
from precsim.validation.training.numformat import FULL, parse_format
from precsim.validation.training.ptq import post_train_quantize, rtn_group
from precsim.validation.training.quant import fake_quant, quantize, round_to_format


def nearest_on_grid(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return grid[np.abs(values[:, None] - grid[None, :]).argmin(axis=1)]


@pytest.mark.parametrize("name, levels, top", [
    ("int2", 4, 1.0), ("int4", 16, 7.0), ("int8", 256, 127.0),
    ("e2m1", 15, 6.0), ("e3m2", 63, 28.0), ("e2m3", 63, 7.5),
    ("e4m3", 253, 448.0), ("e5m2", 247, 57344.0)])
def test_grid_sizes_and_maxima(name, levels, top):
    fmt = parse_format(name)
    grid = fmt.grid()
    assert len(grid) == levels and fmt.max_value == top
    assert grid.max() == top


def test_e2m1_grid_is_the_ocp_fp4_set():
    pos = parse_format("fp4").grid()
    assert sorted(set(np.abs(pos))) == [0, 0.5, 1, 1.5, 2, 3, 4, 6]


@pytest.mark.parametrize("name", ["int3", "int4", "int8", "e2m1", "e3m2", "e4m3", "e5m2"])
def test_rounding_lands_on_the_nearest_grid_value(name):
    fmt = parse_format(name)
    grid = fmt.grid()
    y = torch.from_numpy(np.random.default_rng(0).uniform(-1.2, 1.2, 4000) * fmt.max_value)
    q = round_to_format(y, fmt).numpy()
    assert np.isin(q, grid).all()
    # nearest (ties aside): distance to q equals the distance to the closest grid value
    clipped = np.clip(y.numpy(), grid.min(), grid.max())
    np.testing.assert_allclose(np.abs(clipped - q),
                               np.abs(clipped - nearest_on_grid(clipped, grid)), atol=1e-12)


def test_int_quantization_hand_case():
    x = torch.tensor([[-1.0, 0.3, 0.49, 0.5], [2.0, -0.1, 1.0, 0.0]])
    q = quantize(x, parse_format("int2"), channel_dim=0)   # per row: s = absmax / 1
    assert q.tolist() == [[-1.0, 0.0, 0.0, 0.0], [2.0, -0.0, 0.0, 0.0]]  # 0.5 ties to even
    q4 = quantize(torch.tensor([0.7, -0.35, 0.1]), parse_format("int4"))  # s = 0.1
    np.testing.assert_allclose(q4.numpy(), [0.7, -0.4, 0.1], atol=1e-7)  # -3.5 -> -4 (even)


def test_per_channel_scale_maps_each_row_absmax_to_the_top_code():
    w = torch.randn(8, 64, dtype=torch.float64) * torch.arange(1, 9, dtype=torch.float64)[:, None]
    fmt = parse_format("int4")
    q = quantize(w, fmt, channel_dim=0)
    scale = w.abs().amax(dim=1, keepdim=True) / fmt.max_value
    codes = (q / scale).numpy()
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)
    np.testing.assert_allclose(np.abs(codes).max(axis=1), 7.0)


def test_ste_passes_the_gradient_through():
    x = torch.randn(5, 7, requires_grad=True)
    y = fake_quant(x, parse_format("int3"), channel_dim=0)
    assert not torch.equal(y, x)
    (y * torch.arange(7.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(7.0).expand(5, 7))
    assert fake_quant(x, FULL) is x


@pytest.mark.parametrize("text", ["int1", "17", "e0m3", "fp9", "q4", "e9m9"])
def test_bad_formats_are_input_errors(text):
    with pytest.raises(InputError, match=text):
        parse_format(text)


def test_format_names_round_trip():
    for text, name in [("4", "int4"), ("int8", "int8"), ("fp8", "e4m3"), ("16", "none"),
                       ("none", "none"), ("E5M2", "e5m2"), ("fp8-e5m2", "e5m2")]:
        assert parse_format(text).name == name
        assert parse_format(parse_format(text).name) == parse_format(text)


def test_rtn_hand_case_and_error_shrinking_with_bits():
    w = torch.tensor([[-1.0, 0.0, 0.5, 1.0]])
    # 2 bits: s = 2/3, z = round(1.5) = 2, codes round(w/s)+z = [0.5->0, 2, 2.75->3, 3.5->4->3]
    np.testing.assert_allclose(rtn_group(w, 2, 4).numpy(), [[-4 / 3, 0.0, 2 / 3, 2 / 3]],
                               atol=1e-6)
    g = torch.Generator().manual_seed(0)
    big = torch.randn(64, 256, generator=g)
    errors = [float((rtn_group(big, b, 32) - big).pow(2).mean()) for b in range(2, 9)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-4 < errors[0]


def test_model_counts_non_embedding_params_and_ptq_replaces_block_weights():
    shape = ModelShape(d_model=32, n_layers=2, n_heads=2, vocab_size=16, seq_len=8)
    torch.manual_seed(0)
    model = TinyLM(shape, TrainPrecision(w=parse_format("int4")))
    assert model.non_embedding_params() == shape.non_embedding_params == 2 * (
        4 * 32 * 32 + 2 * 32 * 128 + 4 * 32) + 2 * 32
    ptq = post_train_quantize(model, 3, group_size=32)
    layer, orig = ptq.quant_linears()[0], model.quant_linears()[0]
    assert layer.w_fmt == FULL and orig.w_fmt.name == "int4"
    assert torch.equal(ptq.tok.weight, model.tok.weight)
    # every group of 32 weights holds at most 2^3 distinct values
    groups = layer.weight.detach().reshape(-1, 32)
    assert max(len(torch.unique(g)) for g in groups) <= 8
    tokens = torch.randint(0, 16, (2, 8))
    assert model(tokens).shape == (2, 8, 16)
