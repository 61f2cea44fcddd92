"""Weight formats as PyTorch runs them: one `Linear` per format, built from fp32 weights.

Each format is the kernel PyTorch actually has for it (probed at run time, never
assumed): dense fp32/bf16 matmul; int8 x int8 (`torch._int_mm`, activations quantised
per token at run time); weight-only int8 and int4 packed kernels
(`aten._weight_int8pack_mm`, `aten._weight_int4pack_mm_for_cpu` / the CUDA tinygemm
kernel); dequantise-then-matmul written in plain PyTorch (int8 and int4 g128);
ternary weights packed 4 per byte and unpacked at run time. A format whose kernel is
missing on the local PyTorch/device is reported by `probe_formats` with the reason.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from precsim.validation.torchenv import load_torch

GROUP_SIZE = 128


@dataclass(frozen=True)
class FormatSpec:
    """A measured weight format: its name, the simulator preset it is compared with,
    the activation dtype, and a one-line description of the PyTorch kernel."""

    name: str
    quant: str
    act_dtype: str
    kernel: str


FORMATS: dict[str, FormatSpec] = {f.name: f for f in (
    FormatSpec("fp32", "FP32", "fp32", "torch.mm, fp32"),
    FormatSpec("bf16", "BF16", "bf16", "torch.mm, bf16"),
    FormatSpec("w8a8", "W8A8", "int8", "torch._int_mm int8 x int8 -> int32, "
               "activations quantised per token at run time"),
    FormatSpec("w8a16", "W8A16", "bf16", "aten._weight_int8pack_mm (weight-only int8, "
               "per-channel scales)"),
    FormatSpec("w4a16", f"W4A16-g{GROUP_SIZE}", "bf16", "aten._weight_int4pack_mm_for_cpu "
               f"(weight-only int4, group {GROUP_SIZE}); CUDA: aten._weight_int4pack_mm"),
    FormatSpec("w8a16-deq", "W8A16", "bf16", "plain PyTorch: int8 -> bf16 * scale into "
               "a workspace, then torch.mm (dequantised weight materialised)"),
    FormatSpec("w4a16-deq", f"W4A16-g{GROUP_SIZE}", "bf16", "plain PyTorch: unpack "
               "nibbles (& 15, >> 4, cat), to bf16, * scale + zero per group into a "
               "workspace, then torch.mm"),
    FormatSpec("ternary", "W1.58A16", "bf16", "plain PyTorch: 2-bit codes packed 4 per "
               "byte, unpacked (shift, mask, -1, * scale) to bf16, then torch.mm"),
)}


def _torch_dtype(torch, name: str):
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
            "int8": torch.int8}[name]


class Linear:
    """y = x @ W^T for one weight format; `weight_bytes` is what the kernel reads."""

    def __init__(self, fmt: str, weight, device: str):
        torch = load_torch()
        if fmt not in FORMATS:
            raise KeyError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        self.fmt, self.spec = fmt, FORMATS[fmt]
        self.out_features, self.in_features = weight.shape
        self.device = device
        w = weight.to(device=device, dtype=torch.float32)
        self.act_dtype = (torch.bfloat16 if self.spec.act_dtype in ("bf16", "int8")
                          and fmt != "fp32" else torch.float32)
        build: Callable = getattr(self, "_build_" + fmt.replace("-", "_"))
        self.t: dict = {}  # the format's tensors (weights, scales, constants)
        self.ws: dict = {}  # workspace for dequantised weights, shared by copies
        self._forward = build(torch, w)

    def __call__(self, x):
        return self._forward(x, self.t)

    def copy(self) -> Linear:
        """The same layer in new memory (tensors cloned, nothing re-quantised); the
        workspace is shared, as an engine keeps one for all its layers."""
        other = object.__new__(Linear)
        other.__dict__.update(self.__dict__)
        other.t = {k: v.clone() for k, v in self.t.items()}
        return other

    @property
    def int8_weight_t(self):
        """w8a8 only: the (K, N) int8 weight torch._int_mm multiplies: the transpose of
        the (N, K) weight, as nn.Linear and checkpoints lay it out."""
        return self.t["q"].t()

    # ---- builders: each fills self.t, sets weight_bytes, returns forward(x, t) --------
    def _build_fp32(self, torch, w):
        self.t["w"] = w.contiguous()  # (N, K) row-major, used transposed (nn.Linear)
        self.weight_bytes = w.numel() * 4
        return lambda x, t: torch.nn.functional.linear(x, t["w"])

    def _build_bf16(self, torch, w):
        self.t["w"] = w.to(torch.bfloat16)
        self.weight_bytes = w.numel() * 2
        return lambda x, t: torch.nn.functional.linear(x, t["w"])

    @staticmethod
    def _per_channel_int8(torch, w):
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return q, scale

    def _build_w8a8(self, torch, w):
        q, w_scale = self._per_channel_int8(torch, w)
        # kept (N, K) as nn.Linear lays it out; _int_mm reads its transpose as a
        # column-major B. A row-major (K, N) copy streams 40-50% slower at one token,
        # and by 18-30 GB/s with the power of two in N (oneDNN's B-panel walk strides N)
        self.t["q"] = q.contiguous()
        self.t["scale"] = w_scale.to(torch.bfloat16)
        self.weight_bytes = q.numel()

        def forward(x, t):
            flat = x.reshape(-1, x.shape[-1])
            a_scale = flat.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-8) / 127.0
            xq = torch.round(flat / a_scale).clamp(-127, 127).to(torch.int8)
            acc = torch._int_mm(xq, t["q"].t())
            y = (acc.float() * a_scale).to(torch.bfloat16) * t["scale"]
            return y.reshape(*x.shape[:-1], -1)
        return forward

    def _build_w8a16(self, torch, w):
        q, scale = self._per_channel_int8(torch, w)
        self.t["q"], self.t["scale"] = q, scale.to(torch.bfloat16)
        self.weight_bytes = q.numel() + scale.numel() * 2

        def forward(x, t):
            flat = x.reshape(-1, x.shape[-1])
            y = torch.ops.aten._weight_int8pack_mm(flat, t["q"], t["scale"])
            return y.reshape(*x.shape[:-1], -1)
        return forward

    @staticmethod
    def _group_int4(torch, w, group: int):
        """Asymmetric int4 per group of `group` inputs: q in 0..15, w ~ (q - 8) * s + z."""
        n, k = w.shape
        g = w.reshape(n, k // group, group)
        lo, hi = g.amin(dim=2), g.amax(dim=2)
        scale = ((hi - lo).clamp(min=1e-8) / 15.0)
        q = torch.round((g - lo[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32)
        zero = lo + 8 * scale  # tinygemm convention: w = (q - 8) * scale + zero
        return q.reshape(n, k), scale, zero

    def _build_w4a16(self, torch, w):
        n, k = w.shape
        q, scale, zero = self._group_int4(torch, w, GROUP_SIZE)
        self.t["sz"] = torch.stack([scale.t(), zero.t()], dim=2).contiguous().to(torch.bfloat16)
        self.weight_bytes = n * k // 2 + self.t["sz"].numel() * 2
        if self.device == "cuda":
            packed_u8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
            self.t["packed"] = torch.ops.aten._convert_weight_to_int4pack(packed_u8, 8)
            op = torch.ops.aten._weight_int4pack_mm
        else:
            self.t["packed"] = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
            op = torch.ops.aten._weight_int4pack_mm_for_cpu

        def forward(x, t):
            flat = x.reshape(-1, x.shape[-1])
            y = op(flat, t["packed"], GROUP_SIZE, t["sz"])
            return y.reshape(*x.shape[:-1], -1)
        return forward

    def _build_w8a16_deq(self, torch, w):
        q, scale = self._per_channel_int8(torch, w)
        self.t["q"], self.t["scale"] = q, scale.to(torch.bfloat16)[:, None]
        self.weight_bytes = q.numel() + scale.numel() * 2
        wd = self.ws["wd"] = torch.empty(q.shape, dtype=torch.bfloat16, device=self.device)

        def forward(x, t):
            # dequantised into a workspace allocated once, as an engine does (PyTorch's
            # CPU allocator would otherwise hand back pages that fault again)
            wd.copy_(t["q"])  # int8 -> bf16
            torch.mul(wd, t["scale"], out=wd)
            return torch.nn.functional.linear(x, wd)
        return forward

    def _build_w4a16_deq(self, torch, w):
        n, k = w.shape
        q, scale, zero = self._group_int4(torch, w, GROUP_SIZE)
        t = self.t
        half = k // 2  # low nibbles hold inputs 0..K/2-1, high nibbles K/2..K-1
        t["packed"] = (q[:, half:] << 4 | q[:, :half]).to(torch.uint8)  # (N, K/2)
        t["zero"] = (zero - 8 * scale).to(torch.bfloat16)[..., None]
        t["scale"] = scale.to(torch.bfloat16)[..., None]
        self.weight_bytes = t["packed"].numel() + 2 * t["scale"].numel() * 2
        ws, dev = self.ws, self.device
        ws["lo"], ws["hi"] = (torch.empty(n, half, dtype=torch.uint8, device=dev)
                              for _ in range(2))
        ws["codes"] = torch.empty(n, k, dtype=torch.uint8, device=dev)
        groups = (n, k // GROUP_SIZE, GROUP_SIZE)
        ws["wq"], ws["wd"] = (torch.empty(groups, dtype=torch.bfloat16, device=dev)
                              for _ in range(2))

        def forward(x, t):
            # whole-tensor (vectorised) ops into a workspace allocated once, as an engine
            # does: a broadcast shift over a trailing axis of 2, or interleaving with
            # stack(dim=-1), runs PyTorch's scalar loop (~25x slower per element)
            torch.bitwise_and(t["packed"], 15, out=ws["lo"])
            torch.bitwise_right_shift(t["packed"], 4, out=ws["hi"])
            torch.cat((ws["lo"], ws["hi"]), dim=1, out=ws["codes"])  # (N, K)
            ws["wq"].copy_(ws["codes"].view(groups))  # uint8 -> bf16
            torch.mul(ws["wq"], t["scale"], out=ws["wd"])
            torch.add(ws["wd"], t["zero"], out=ws["wd"])
            return torch.nn.functional.linear(x, ws["wd"].view(n, k))
        return forward

    def _build_ternary(self, torch, w):
        n, k = w.shape
        scale = w.abs().mean(dim=1).clamp(min=1e-8)  # BitNet b1.58 absmean
        trit = torch.round(w / scale[:, None]).clamp(-1, 1).to(torch.int32) + 1  # 0..2
        t4 = trit.reshape(n, k // 4, 4)
        t = self.t
        t["packed"] = (t4[..., 0] | t4[..., 1] << 2 | t4[..., 2] << 4 | t4[..., 3] << 6
                       ).to(torch.uint8)  # (N, K/4): 2 bits per weight
        t["scale"] = scale.to(torch.bfloat16)[:, None]
        self.weight_bytes = t["packed"].numel() + t["scale"].numel() * 2
        t["shifts"] = torch.tensor([0, 2, 4, 6], dtype=torch.uint8, device=self.device)
        ws = self.ws
        ws["codes"] = torch.empty(n, k // 4, 4, dtype=torch.uint8, device=self.device)
        ws["wd"] = torch.empty(n, k, dtype=torch.bfloat16, device=self.device)

        def forward(x, t):
            # into a workspace allocated once, as an engine does: fresh temporaries
            # above the allocator's mmap threshold page-fault on every call (a 32000 x
            # 1024 LM head unpacked 3.6x slower, and timings varied by 20%)
            codes, wd = ws["codes"], ws["wd"]
            torch.bitwise_right_shift(t["packed"][..., None], t["shifts"], out=codes)
            torch.bitwise_and(codes, 3, out=codes)
            wd.copy_(codes.view(n, k))  # uint8 -> bf16
            wd.sub_(1)
            wd.mul_(t["scale"])
            return torch.nn.functional.linear(x, wd)
        return forward


@dataclass(frozen=True)
class Probe:
    fmt: str
    available: bool
    reason: str


def probe_formats(device: str, formats=None) -> dict[str, Probe]:
    """Try each format's kernel once on a tiny shape; unavailable ones say why."""
    torch = load_torch()
    torch.manual_seed(0)
    out: dict[str, Probe] = {}
    for fmt in formats or FORMATS:
        if fmt not in FORMATS:
            out[fmt] = Probe(fmt, False, f"unknown format (known: {', '.join(FORMATS)})")
            continue
        try:
            lin = Linear(fmt, torch.randn(256, 256), device)
            x = torch.randn(32, 256, device=device).to(lin.act_dtype)  # CUDA _int_mm: m > 16
            y = lin(x)
            if tuple(y.shape) != (32, 256):
                raise RuntimeError(f"unexpected output shape {tuple(y.shape)}")
            out[fmt] = Probe(fmt, True, FORMATS[fmt].kernel)
        except (RuntimeError, NotImplementedError, AttributeError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            out[fmt] = Probe(fmt, False, f"{FORMATS[fmt].kernel}: not usable on {device} "
                                         f"with torch {torch.__version__} ({first[:160]})")
    return out
