"""Quantization formats: element types, group scales, packing, per-group overrides.

A `QuantFormat` says how weights, activations and the KV cache are stored and what
element type the math sees. It is parsed from a small grammar or a named preset:

    W{w}A{a}[-g{group}][-KV{kv}][-asym][-pack{bits}][@GROUP=FORMAT,...]

* `w`, `a`, `kv`: a bit width (1, 1.58, 2..8 integer; 16 = bf16; 32 = fp32) or a float
  element name (`fp8` = `e4m3`, `e5m2`, `fp4`, `fp16`, `bf16`, `fp32`).
* `-g{group}`: one scale (`scale_bits`, fp16 by default) per `group` weights; without it
  weights below 16 bits carry one scale per output channel.
* `-asym`: a zero point of `weight_bits` bits per group as well (GPTQ/AWQ asymmetric).
* `-pack{bits}`: storage of ternary (W1.58) weights: `2` (2-bit codes, the default, as
  BitNet's I2_S kernel) or `1.6` (5 trits per byte, 3^5 = 243 <= 256).
* `@attn=W8A8,lm_head=W16A16`: per-layer-group overrides; groups are `embedding`,
  `attn` (q/k/v/o projections), `mlp` and `lm_head`.

Effective bits per weight (design.md vocabulary):
    effective_weight_bits = storage bits + (scale_bits + zero_bits) / group_size
so int4 with an fp16 scale per 128 is 4 + 16/128 = 4.125 bits.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from precsim.simulator.dtypes import DTYPE_BITS, FLOAT_DTYPES
from precsim.simulator.errors import InputError


#: Layer groups a format can be overridden for.
GROUPS = ("embedding", "attn", "mlp", "lm_head")

_FLOAT_TOKENS = {"fp8": "fp8_e4m3", "e4m3": "fp8_e4m3", "fp8e4m3": "fp8_e4m3",
                 "e5m2": "fp8_e5m2", "fp8e5m2": "fp8_e5m2", "fp4": "fp4_e2m1",
                 "e2m1": "fp4_e2m1", "fp16": "fp16", "bf16": "bf16", "fp32": "fp32"}
_NUMBER_TOKENS = {"32": "fp32", "16": "bf16", "8": "int8", "7": "int7", "6": "int6",
                  "5": "int5", "4": "int4", "3": "int3", "2": "int2", "1.58": "ternary",
                  "1": "binary"}
_ACT_DTYPES = frozenset({"fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1",
                         "int8", "int4"})
_KV_DTYPES = frozenset({"fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int8", "int4",
                        "int2"})
#: scale of sub-8-bit integer KV entries: one fp16 scale per this many elements (KIVI-style
#: per-token groups; Liu et al., KIVI, arXiv 2402.02750 use groups of 32-128).
KV_GROUP_SIZE = 64
_TOKEN = r"(?:\d+(?:\.\d+)?|[a-z][a-z0-9]*)"
_GRAMMAR = re.compile(
    rf"^w(?P<w>{_TOKEN})a(?P<a>{_TOKEN})(?:-g(?P<g>\d+))?(?:-kv(?P<kv>{_TOKEN}))?"
    r"(?P<asym>-asym)?(?:-pack(?P<pack>\d+(?:\.\d+)?))?$")
GRAMMAR_HELP = ("W{w}A{a}[-g{group}][-KV{kv}][-asym][-pack{2|1.6}][@GROUP=FORMAT,...] "
                "with w in 1, 1.58, 2..8, 16, 32, fp8, e5m2, fp4, fp16, bf16; a and kv in "
                "4, 8, 16, 32, fp8, fp16, bf16 (kv also 2); GROUP in " + ", ".join(GROUPS))


@dataclass(frozen=True)
class QuantFormat:
    """Storage and math element types of weights, activations and KV cache.

    `weight_bits` is the nominal width (1.58 for ternary); `weight_storage_bits` the
    packed bits per element actually stored. `group_size=None` means one scale per
    output channel (charged per GEMM as n * scale_bits, see `channel_scale_bits`).
    Activation groups (`act_group_size`) model formats that quantise activations in
    blocks with their own scales (NVFP4, llama.cpp's q8 activations).
    """

    name: str
    weight_bits: float
    act_bits: float
    kv_bits: float
    group_size: int | None
    scale_bits: int
    zero_bits: int
    weight_dtype: str
    act_dtype: str
    kv_dtype: str
    weight_storage_bits: float
    act_group_size: int | None = None
    act_scale_bits: int = 0
    overrides: tuple[tuple[str, QuantFormat], ...] = ()

    @property
    def effective_weight_bits(self) -> float:
        """Stored bits per weight: storage bits + (scale + zero-point bits) / group size."""
        if self.group_size is None:
            return self.weight_storage_bits
        return self.weight_storage_bits + (self.scale_bits + self.zero_bits) / self.group_size

    @property
    def channel_scale_bits(self) -> int:
        """Bits per output channel for per-channel scales (0 when grouped or unquantized)."""
        if self.group_size is not None or self.weight_bits >= 16:
            return 0
        return self.scale_bits + self.zero_bits

    @property
    def effective_act_bits(self) -> float:
        """Stored bits per activation element fed to a GEMM (with block scales)."""
        if self.act_group_size is None:
            return self.act_bits
        return self.act_bits + self.act_scale_bits / self.act_group_size

    @property
    def effective_kv_bits(self) -> float:
        """Stored bits per KV-cache element: sub-8-bit integer KV carries an fp16 scale
        per KV_GROUP_SIZE elements."""
        if self.kv_dtype.startswith("int") and self.kv_bits < 8:
            return self.kv_bits + 16 / KV_GROUP_SIZE
        return self.kv_bits

    def for_group(self, group: str) -> QuantFormat:
        """The format used by layer group `group` (an override, or this format)."""
        if group not in GROUPS:
            raise InputError(f"unknown layer group {group!r}; expected one of "
                             f"{', '.join(GROUPS)}")
        for name, fmt in self.overrides:
            if name == group:
                return fmt
        return self

    def with_overrides(self, overrides: Mapping[str, str | QuantFormat]) -> QuantFormat:
        """A copy with per-group formats replaced (`{"lm_head": "W16A16"}`)."""
        merged = dict(self.overrides)
        for group, spec in overrides.items():
            if group not in GROUPS:
                close = difflib.get_close_matches(group, GROUPS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"unknown layer group {group!r} in a precision override"
                                 f"{hint}; groups: {', '.join(GROUPS)}")
            fmt = parse_quant(spec) if isinstance(spec, str) else spec
            merged[group] = dataclasses.replace(fmt, overrides=())
        items = tuple(sorted(merged.items(), key=lambda kv: GROUPS.index(kv[0])))
        base = self.name.split("@", 1)[0]
        name = base + ("@" + ",".join(f"{g}={f.name}" for g, f in items) if items else "")
        return dataclasses.replace(self, overrides=items, name=name)

    @classmethod
    def from_dtypes(cls, weight_dtype: str, act_dtype: str | None = None,
                    kv_dtype: str = "bf16", group_size: int | None = None,
                    scale_bits: int = 16) -> QuantFormat:
        """A format from element type names, e.g. ("int4", "bf16", group_size=128)."""
        act_dtype = act_dtype or weight_dtype
        for role, dtype in (("weight", weight_dtype), ("activation", act_dtype),
                            ("kv", kv_dtype)):
            if dtype not in DTYPE_BITS:
                raise InputError(f"unknown {role} dtype {dtype!r}; expected one of "
                                 f"{', '.join(DTYPE_BITS)}")
        wbits = DTYPE_BITS[weight_dtype]
        storage = 2.0 if weight_dtype == "ternary" else wbits
        grouped = group_size is not None and wbits < 16
        name = f"{weight_dtype}x{act_dtype}" + (f"-g{group_size}" if grouped else "")
        return cls(name=name, weight_bits=wbits, act_bits=DTYPE_BITS[act_dtype],
                   kv_bits=DTYPE_BITS[kv_dtype], group_size=group_size if grouped else None,
                   scale_bits=scale_bits if wbits < 16 else 0, zero_bits=0,
                   weight_dtype=weight_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                   weight_storage_bits=storage)


def _preset(name: str, weight_dtype: str, act_dtype: str, *, group_size: int | None = None,
            scale_bits: int = 16, act_group_size: int | None = None,
            act_scale_bits: int = 0, kv_dtype: str = "bf16") -> QuantFormat:
    wbits = DTYPE_BITS[weight_dtype]
    return QuantFormat(name=name, weight_bits=wbits, act_bits=DTYPE_BITS[act_dtype],
                       kv_bits=DTYPE_BITS[kv_dtype], group_size=group_size,
                       scale_bits=scale_bits if wbits < 16 else 0, zero_bits=0,
                       weight_dtype=weight_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                       weight_storage_bits=2.0 if weight_dtype == "ternary" else wbits,
                       act_group_size=act_group_size, act_scale_bits=act_scale_bits)


#: Named formats. Sources: NVIDIA NVFP4 (e2m1 with an e4m3 scale per 16 elements);
#: OCP MX v1.0 MXFP4 (e2m1, 8-bit e8m0 scale per 32); llama.cpp ggml-common.h block_q4_0
#: (32 x 4-bit + fp16 scale = 18 bytes) and block_q8_0 (32 x int8 + fp16 scale), with
#: activations quantised to q8 blocks for the integer dot product; vLLM FP8 (e4m3 weights
#: and activations, per-channel/per-tensor scales); BitNet b1.58 (ternary weights, int8
#: per-token activations).
PRESETS: dict[str, QuantFormat] = {p.name: p for p in (
    _preset("BF16", "bf16", "bf16"),
    _preset("FP16", "fp16", "fp16", kv_dtype="fp16"),
    _preset("FP32", "fp32", "fp32", kv_dtype="fp32"),
    _preset("FP8", "fp8_e4m3", "fp8_e4m3", scale_bits=32),
    _preset("NVFP4", "fp4_e2m1", "fp4_e2m1", group_size=16, scale_bits=8,
            act_group_size=16, act_scale_bits=8),
    _preset("MXFP4", "fp4_e2m1", "fp4_e2m1", group_size=32, scale_bits=8,
            act_group_size=32, act_scale_bits=8),
    _preset("Q4_0", "int4", "int8", group_size=32, act_group_size=32, act_scale_bits=16),
    _preset("Q8_0", "int8", "int8", group_size=32, act_group_size=32, act_scale_bits=16),
    _preset("BITNET", "ternary", "int8"),
)}


def _element(token: str, role: str, spec: str, allowed: frozenset[str] | None) -> str:
    dtype = _NUMBER_TOKENS.get(token) or _FLOAT_TOKENS.get(token)
    if dtype is None or (allowed is not None and dtype not in allowed):
        choices = sorted(set(_NUMBER_TOKENS) | set(_FLOAT_TOKENS)) if allowed is None \
            else sorted(t for t, d in {**_NUMBER_TOKENS, **_FLOAT_TOKENS}.items()
                        if d in allowed)
        raise InputError(f"quant format {spec!r}: {role} {token!r} is not accepted; "
                         f"{role} may be {', '.join(choices)} (grammar: {GRAMMAR_HELP})")
    return dtype


def _format_error(spec: str) -> InputError:
    names = list(PRESETS)
    close = difflib.get_close_matches(spec.upper(), names + ["W16A16", "W8A16", "W8A8",
                                      "W4A16-g128", "W4A16-g64-KV8", "W4A4", "W2A16-g64",
                                      "W1.58A8"], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return InputError(f"unknown quant format {spec!r}.{hint} Accepted: {GRAMMAR_HELP}; "
                      f"or a preset: {', '.join(names)}")


def parse_quant(spec: str | QuantFormat) -> QuantFormat:
    """Parse a format spec ("W4A16-g128", "NVFP4", "W4A16-g128@lm_head=W16A16")."""
    if isinstance(spec, QuantFormat):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"quant format must be a non-empty string, got {spec!r}; "
                         f"accepted: {GRAMMAR_HELP}")
    return _parse_text(spec.strip())


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> QuantFormat:
    """`parse_quant` of a stripped spec, memoised (QuantFormat is frozen; errors are
    raised again on every call)."""
    base, _, override_text = text.partition("@")
    fmt = _parse_base(base.strip(), text)
    if not override_text:
        return fmt
    overrides: dict[str, str] = {}
    for item in override_text.split(","):
        group, sep, sub = item.partition("=")
        if not sep or not group.strip() or not sub.strip():
            raise InputError(f"quant format {text!r}: override {item!r} must be "
                             "GROUP=FORMAT, e.g. lm_head=W16A16")
        if "@" in sub:
            raise InputError(f"quant format {text!r}: more than one '@'; write every "
                             "override after a single '@', separated by commas "
                             "(W4A16@attn=W8A8,mlp=W4A4)")
        if group.strip() in overrides:
            raise InputError(f"quant format {text!r}: group {group.strip()!r} is overridden "
                             f"twice ({overrides[group.strip()]} and {sub.strip()}); give "
                             "each group once")
        overrides[group.strip()] = sub.strip()
    return fmt.with_overrides({g: _parse_base(s, text) for g, s in overrides.items()})


def _parse_base(text: str, full: str) -> QuantFormat:
    preset = {k.lower(): v for k, v in PRESETS.items()}.get(text.lower())
    if preset is not None:
        return preset
    match = _GRAMMAR.match(text.lower())
    if not match:
        raise _format_error(full)
    wdtype = _element(match["w"], "weight bits", full, None)
    adtype = _element(match["a"], "activation bits", full, _ACT_DTYPES)
    kvdtype = _element(match["kv"], "KV bits", full, _KV_DTYPES) if match["kv"] \
        else ("fp32" if adtype == "fp32" else "bf16")
    wbits = DTYPE_BITS[wdtype]
    group = int(match["g"]) if match["g"] else None
    if group is not None and not 1 <= group <= 1 << 16:
        raise InputError(f"quant format {full!r}: group size must be 1..65536, got {group}")
    if group is not None and wbits >= 16:
        raise InputError(f"quant format {full!r}: a group scale (-g{group}) needs weights "
                         "below 16 bits")
    if match["asym"] and wbits >= 16:
        raise InputError(f"quant format {full!r}: -asym (zero points) needs integer "
                         "weights below 16 bits")
    if match["asym"] and wdtype in FLOAT_DTYPES:
        raise InputError(f"quant format {full!r}: -asym applies to integer weights, "
                         f"not {wdtype}")
    storage = wbits
    if wdtype == "ternary":
        storage = 2.0
        if match["pack"]:
            storage = float(match["pack"])
            if storage not in (2.0, 1.6):
                raise InputError(f"quant format {full!r}: ternary packing must be -pack2 "
                                 "(2-bit codes) or -pack1.6 (5 trits per byte)")
    elif match["pack"]:
        raise InputError(f"quant format {full!r}: -pack only applies to ternary (W1.58) "
                         "weights")
    zero_bits = int(round(wbits)) if match["asym"] else 0
    return QuantFormat(
        name=text, weight_bits=wbits, act_bits=DTYPE_BITS[adtype],
        kv_bits=DTYPE_BITS[kvdtype], group_size=group,
        scale_bits=16 if wbits < 16 else 0, zero_bits=zero_bits, weight_dtype=wdtype,
        act_dtype=adtype, kv_dtype=kvdtype, weight_storage_bits=storage)


# ---- formats as arrays ---------------------------------------------------------------------

def as_quant(quant):
    """A QuantFormat, or an object array of them, from specs / formats / sequences."""
    if isinstance(quant, (QuantFormat, str)):
        return parse_quant(quant)
    if isinstance(quant, tuple) and len(quant) == 2 and all(isinstance(q, str) for q in quant) \
            and all(q in DTYPE_BITS for q in quant):
        return QuantFormat.from_dtypes(*quant)
    src = np.asarray(quant, dtype=object) if not isinstance(quant, np.ndarray) else quant
    out = np.empty(src.shape, dtype=object)
    for idx in np.ndindex(src.shape):
        out[idx] = parse_quant(src[idx])
    return out if out.ndim else out[()]


def quant_attr(quant, fn):
    """fn(format) over a QuantFormat or an object array of them (float or object)."""
    if isinstance(quant, QuantFormat):
        return fn(quant)
    vals = [fn(q) for q in quant.reshape(-1)]
    if isinstance(vals[0], (int, float, np.number)) and not isinstance(vals[0], bool):
        return np.array(vals, dtype=float).reshape(quant.shape)
    out = np.empty(quant.shape, dtype=object)
    for idx, val in zip(np.ndindex(quant.shape), vals):
        out[idx] = val
    return out


def group_format(quant, group: str):
    """The format(s) layer group `group` uses (per-group overrides applied)."""
    return quant_attr(as_quant(quant), lambda q: q.for_group(group))


def dtype_bits(dtype):
    """Bits per element of a dtype name or an object array of names."""
    if isinstance(dtype, str):
        return float(DTYPE_BITS[dtype])
    return np.vectorize(lambda d: float(DTYPE_BITS[d]), otypes=[float])(dtype)


def stream_bits(quant):
    """Bits of the unquantised activation stream: 32 for fp32 formats, else 16."""
    return quant_attr(quant, lambda q: 32.0 if q.act_bits >= 32 else 16.0)


def stream_dtype(quant):
    """Element type of the unquantised activation stream: fp32, fp16 or else bf16."""
    return quant_attr(quant, lambda q: "fp32" if q.act_bits >= 32 else
                      ("fp16" if q.act_dtype == "fp16" else "bf16"))
