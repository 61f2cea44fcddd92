"""Validity domains: the region of (N, D, D/N, bits) where a law preset was fitted or checked.

A prediction outside it is an extrapolation. `Domain.flags(...)` names each quantity
that leaves the domain (vectorised: arrays are checked element-wise and summarised);
`Domain.outside(...)` gives the element-wise mask. Training bits at >= 16 (or inf) are
the high-precision baseline every law is anchored on and are always inside;
`P_post` None / inf (no post-training quantization) is always inside.
Sources of each range: the `source` field and docs/laws.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from precsim.lawcore.inputs import HIGH_PRECISION_BITS, make_inputs

Range = tuple[float, float]
_LABELS = {"N": ("N", "parameters"), "D": ("D", "tokens"), "tokens_per_param": ("D/N", ""),
           "w_bits": ("P_w", "bits"), "a_bits": ("P_a", "bits"), "kv_bits": ("P_kv", "bits"),
           "post_bits": ("P_post", "bits")}


@dataclass(frozen=True)
class Domain:
    """Closed ranges (lo, hi) of the measured runs behind a law preset.

    post_bits None: the law has no post-training-quantization evidence (any finite P_post
    is outside). A bits range (16, 16) means that part was never quantized in the runs.
    """

    N: Range
    D: Range
    tokens_per_param: Range
    w_bits: Range
    a_bits: Range
    kv_bits: Range
    post_bits: Range | None
    source: str

    def outside(self, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
                P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
                P_post: Any = None) -> dict[str, np.ndarray]:
        """Element-wise masks, one per quantity (keys as the fields), True = outside."""
        X = make_inputs(N, D, P_w, P_a, P_kv, P_post)
        masks = {"N": _out(X.N, self.N), "D": _out(X.D, self.D),
                 "tokens_per_param": _out(X.D / X.N, self.tokens_per_param)}
        for field, P in (("w_bits", X.P_w), ("a_bits", X.P_a), ("kv_bits", X.P_kv)):
            masks[field] = (P < HIGH_PRECISION_BITS) & _out(P, getattr(self, field))
        ptq = np.isfinite(X.P_post)
        masks["post_bits"] = ptq if self.post_bits is None else ptq & _out(X.P_post,
                                                                          self.post_bits)
        return masks

    def outside_any(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """One mask: True where any quantity is outside."""
        return np.logical_or.reduce(list(self.outside(*args, **kwargs).values()))

    def flags(self, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
              P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
              P_post: Any = None, law: str = "") -> list[str]:
        """One sentence per quantity outside the domain (empty list: inside)."""
        X = make_inputs(N, D, P_w, P_a, P_kv, P_post)
        values = {"N": X.N, "D": X.D, "tokens_per_param": X.D / X.N, "w_bits": X.P_w,
                  "a_bits": X.P_a, "kv_bits": X.P_kv, "post_bits": X.P_post}
        who = f"law {law!r}" if law else "the law"
        out = []
        for field, mask in self.outside(N, D, P_w, P_a, P_kv, P_post).items():
            if not mask.any():
                continue
            symbol, unit = _LABELS[field]
            bad = values[field][mask]
            shown = f"{float(bad.min()):.4g}" if bad.min() == bad.max() else \
                f"{float(bad.min()):.4g} to {float(bad.max()):.4g}"
            count = "" if mask.size == 1 else f" ({int(mask.sum())} of {mask.size} values)"
            rng = getattr(self, field)
            unit = f" {unit}" if unit else ""
            where = "no post-training quantization was fitted" if rng is None else \
                f"fitted domain {rng[0]:.4g} to {rng[1]:.4g}{unit}"
            out.append(f"{symbol} = {shown}{unit}{count} is outside {who} ({where}): "
                       "an extrapolation")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _out(values: np.ndarray, rng: Range) -> np.ndarray:
    # 1e-9 relative slack: a range end given as 1.5e9 must contain 1.5e9 computed elsewhere
    return (values < rng[0] * (1 - 1e-9)) | (values > rng[1] * (1 + 1e-9))


def validity(domain: Domain | None, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
             P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
             P_post: Any = None, law: str = "") -> dict[str, Any]:
    """JSON-ready validity record: inside (bool), flags (sentences), domain (ranges or None)."""
    if domain is None:
        flags = [f"law {law!r} has no stated validity domain (custom or fitted constants): "
                 "check its runs cover this prediction"]
        return {"inside": False, "flags": flags, "domain": None}
    flags = domain.flags(N, D, P_w, P_a, P_kv, P_post, law=law)
    return {"inside": not flags, "flags": flags, "domain": domain.to_dict()}


_HP = (HIGH_PRECISION_BITS, HIGH_PRECISION_BITS)  # part never quantized in the runs
_KUMAR = Domain(
    N=(30e6, 1.7e9), D=(1.5e9, 26e9), tokens_per_param=(1.5e9 / 220e6, 26e9 / 30e6),
    w_bits=(3.0, 16.0), a_bits=(4.0, 16.0), kv_bits=(4.0, 16.0), post_bits=(3.0, 16.0),
    source="Kumar et al. 2024 (arXiv 2411.04330): fits on 30M-220M parameters x 1.5B-26B "
           "tokens, checked up to 1.7B; 3-16 bits swept, runs at P_a or P_kv <= 3 diverged "
           "(reference/laws.md)")
PRESET_DOMAINS: dict[str, Domain] = {
    "kumar2024": _KUMAR, "kumar2024-fp": _KUMAR, "kumar2024-b": _KUMAR,
    "lowbit-qat": Domain(
        N=(99e6, 3.9e9), D=(300e9, 300e9), tokens_per_param=(300e9 / 3.9e9, 300e9 / 99e6),
        w_bits=(1.0, 16.0), a_bits=(4.0, 16.0), kv_bits=(4.0, 16.0), post_bits=(3.0, 16.0),
        source="weight factor: Spectra TriLM/BiLM/FloatLM (arXiv 2407.12327), 99M-3.9B "
               "parameters, all at 300B tokens, 1-1.58-16-bit weights; activation/KV/PTQ "
               "terms and their ranges: Kumar et al. 2024"),
    "sun2025": Domain(
        N=(41e6, 679e6), D=(10e9, 100e9), tokens_per_param=(10e9 / 679e6, 100e9 / 41e6),
        w_bits=(3.0, 16.0), a_bits=_HP, kv_bits=_HP, post_bits=None,
        source="Sun et al. 2025 (arXiv 2501.02423): fits on 41M-679M parameters x 10B-100B "
               "tokens (validation runs at 1.2B-70B); formats from E1M1 (3 bits) to the BF16 "
               "baseline; forward activations not quantized (reference/data/lowbit_laws.md)"),
    "ouyang2024": Domain(
        N=(70e6, 12e9), D=(1e9, 300e9), tokens_per_param=(1e9 / 12e9, 300e9 / 70e6),
        w_bits=_HP, a_bits=_HP, kv_bits=_HP, post_bits=(2.0, 4.0),
        source="Ouyang et al. 2024 (arXiv 2411.17691): GPTQ of Pythia checkpoints (the "
               "suite spans 70M-12B parameters and up to 300B tokens; which sizes and "
               "checkpoints entered the fit was not read) to 2, 3, 4 bits"),
    "chinchilla": Domain(
        N=(70e6, 16e9), D=(5e9, 500e9), tokens_per_param=(5e9 / 16e9, 500e9 / 70e6),
        w_bits=_HP, a_bits=_HP, kv_bits=_HP, post_bits=None,
        source="Hoffmann et al. 2022: over 400 models of 70M-16B parameters on 5B-500B "
               "tokens, 16-bit training"),
}
PRESET_DOMAINS["epoch2024"] = PRESET_DOMAINS["chinchilla"]  # refit of the same runs
