"""The optional `gemm` block of a hardware profile: the matrix engine's structure that
simulator.gemm_shape turns into shape-dependent efficiency (docs/prefill.md)."""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from precsim.simulator.cited import Count, Fraction, _Cited, _Strict


def _parse_tiles(value: Any) -> tuple[tuple[int, int], ...]:
    """ "256x128 128x128" -> ((256, 128), (128, 128))."""
    if not isinstance(value, str) or not re.fullmatch(r"\s*\d+x\d+(\s+\d+x\d+)*\s*", value):
        raise ValueError(f"expected tiles as 'ROWSxCOLS ...' (e.g. '256x128 128x128'), "
                         f"got {value!r}")
    tiles = tuple(tuple(int(x) for x in t.split("x")) for t in value.split())
    if any(a <= 0 or b <= 0 for a, b in tiles):
        raise ValueError(f"tile sizes must be positive, got {value!r}")
    return tiles


class Tiles(_Cited):
    """Output tiles (rows x columns) a kernel library chooses among."""

    value: Annotated[tuple[tuple[int, int], ...], BeforeValidator(_parse_tiles)]


class GemmSpec(_Strict):
    """Structure of the matrix engine for shape-dependent efficiency
    (simulator.gemm_shape): `units` that run tiles in parallel (SMs, cores), the output
    `tiles` of its GEMM kernels (CTA tiles; a CPU's micro-kernel), `k_step` (K depth of
    one main-loop step), `max_split` (largest split-K the library uses; default
    gemm_shape.SPLITS' largest); `flash_tile` (Br x Bc of the flash-attention kernel)
    and `flash_efficiency` (its rate over the GEMM's achievable rate)."""

    units: Count
    tiles: Tiles
    k_step: Count
    max_split: Count | None = None
    flash_tile: Tiles | None = None
    flash_efficiency: Fraction | None = None
