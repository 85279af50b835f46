"""How the encoder runs at prediction time: ``model.inference_precision`` and CPU fast paths.

* ``"fp32"`` (default): float32. On CPU the encoder's linear layers run with weights
  prepacked once for oneDNN (:class:`PackedLinear`), the feed-forward GELU fused into its
  matrix product: the same float32 arithmetic up to rounding order (probabilities within
  ~1e-5), 1.5-1.7x faster than torch's default CPU path on small batches. On CUDA the
  predictor's ``bf16`` switch (``training.bf16``, on by default) still autocasts to
  bfloat16, the standard GPU path.
* ``"bf16"``: matrix products in bfloat16 (float32 accumulation); layer norms, residual
  sums, softmax and the tag classifier stay float32. CPU: prepacked bf16 weights (or
  ``torch.autocast`` where oneDNN is missing); CUDA: ``torch.autocast``. Fast only on CPUs
  with native bf16 (``avx512_bf16``/AMX): elsewhere slower than fp32, and a warning says so.
* ``"int8"`` (CPU only): :class:`Int8Linear` layers, weights int8 per output channel,
  activations int8 per ROW (token) at run time, products accumulated exactly in int32
  (``torch._int_mm``, VNNI on x86). Per-row activation scales keep a token's result
  independent of the other rows of its batch (padding, other sentences); the per-TENSOR
  activation scale of ``torch.ao.quantization.quantize_dynamic`` does not, which would make
  predictions depend on the batch. The least accurate option (BERT's outlier channels).

The fast copies share every weight they do not convert with the model (word embeddings,
layer norms, classifier), so they cost only the converted linear weights in memory.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
from collections.abc import Callable

import torch
from torch import nn

from concner.config import ModelConfig
from concner.errors import ConfigError
from concner.settings import check_setting

log = logging.getLogger(__name__)

#: smallest quantisation scale: a row of zeros (or nearly) quantises to zeros, not NaN
_MIN_SCALE = 1e-12
#: batch-size hint for oneDNN's weight layout (padded tokens of a typical CPU batch)
_PACK_ROWS_HINT = 512


def check_precision(precision: str, device: torch.device) -> str:
    """``precision`` if it is known and runs on ``device``; else :class:`ConfigError`
    naming ``model.inference_precision``."""
    check_setting(ModelConfig, "model", "inference_precision", precision)
    if precision == "int8" and device.type != "cpu":
        raise ConfigError(
            f"model.inference_precision='int8' runs on CPU only (int8 linear layers), but the "
            f"device is {device.type!r}; use 'bf16' on a GPU, or device 'cpu'"
        )
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("model.inference_precision='bf16': this CPU has no native bfloat16 "
                    "(avx512_bf16/AMX), so bf16 is likely slower than fp32")
    return precision


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 matrix products natively on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class PackedLinear(nn.Module):
    """An ``nn.Linear`` ``[..., K] -> [..., N]`` whose weight is reordered once into
    oneDNN's blocked layout (``dtype`` float32 or bfloat16), optionally with an exact
    (erf) GELU fused after it. Inputs are cast to ``dtype``; the output has ``dtype``."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype = torch.float32, *,
                 gelu: bool = False):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.dtype, self.gelu = dtype, gelu
        weight = linear.weight.detach().to(dtype)
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(
            weight, _PACK_ROWS_HINT))
        bias = None if linear.bias is None else linear.bias.detach().to(dtype).clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        if self.gelu:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "gelu", [],
                                                      "none")
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        post = ", gelu" if self.gelu else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.dtype}{post}"


class Int8Linear(nn.Module):
    """Drop-in for an ``nn.Linear`` ``[..., K] -> [..., N]`` with int8 weights and int8
    per-row activations: ``y = (q(x) @ q(W)^T) * s_x * s_w + b``.

    ``W`` ``[N, K]`` is quantised once, symmetric per output channel (``s_w`` ``[N]``);
    each row of ``x`` ``[M, K]`` is quantised on every call, symmetric with its own scale
    ``s_x`` ``[M, 1]`` (absmax / 127). The int8 product accumulates exactly in int32, so a
    row's output depends on that row alone. The result is float32.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()  # [N, K]
        scale = weight.abs().amax(dim=1).clamp_min(_MIN_SCALE) / 127.0  # [N]
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("weight_scale", scale)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()  # [M, K]
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min_(_MIN_SCALE).div_(127.0)  # [M, 1]
        quantised = torch.round(rows / scale).to(torch.int8)
        out = torch._int_mm(quantised, self.weight.t()).float()  # [M, N], exact int32 sums
        out.mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def _is_exact_gelu(module: nn.Module) -> bool:
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return getattr(module, "act", None) is nn.functional.gelu  # transformers' GELUActivation


def _convert_linears(model: nn.Module, within: str,
                     make: Callable[[nn.Linear, bool], nn.Module], fuse_gelu: bool) -> nn.Module:
    """A copy of ``model`` sharing every parameter and buffer with it, in which each
    ``nn.Linear`` under the submodule ``within`` is replaced by ``make(linear, gelu)``.
    With ``fuse_gelu``, a block holding ``dense`` (Linear) then an exact-GELU
    ``intermediate_act_fn`` (BERT's feed-forward input) gets ``gelu=True`` and an identity
    activation."""
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    clone = copy.deepcopy(model, shared)
    for module in list(clone.get_submodule(within).modules()):
        fuse = (fuse_gelu and isinstance(getattr(module, "dense", None), nn.Linear)
                and _is_exact_gelu(getattr(module, "intermediate_act_fn", None)))
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, make(child, fuse and name == "dense"))
        if fuse:
            module.intermediate_act_fn = nn.Identity()
    return clone.eval()


def int8_copy(model: nn.Module, within: str = "encoder") -> nn.Module:
    """``model`` with every ``nn.Linear`` under ``within`` as an :class:`Int8Linear`
    (other weights shared, ``model`` unchanged)."""
    return _convert_linears(model, within, lambda linear, _: Int8Linear(linear), False)


def packed_copy(model: nn.Module, dtype: torch.dtype = torch.float32,
                within: str = "encoder") -> nn.Module | None:
    """``model`` with every ``nn.Linear`` under ``within`` as a :class:`PackedLinear` of
    ``dtype`` (feed-forward GELUs fused), other weights shared, ``model`` unchanged; None
    when this torch build cannot run oneDNN's prepacked linear (checked on a small layer
    against ``nn.functional.linear``)."""
    if not onednn_linear_works(dtype):
        return None
    return _convert_linears(model, within, lambda linear, gelu: PackedLinear(linear, dtype, gelu=gelu),
                            True)


@functools.cache
def onednn_linear_works(dtype: torch.dtype) -> bool:
    """Whether :class:`PackedLinear` of ``dtype`` runs here and matches ``F.linear``."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        # skip_init: a default init would draw from the global torch RNG, once per process
        # (this is cached), so the first training run of a process would differ from later ones
        linear = torch.nn.utils.skip_init(nn.Linear, 16, 8)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(8, 16, generator=gen))
            linear.bias.copy_(torch.randn(8, generator=gen))
        x = torch.randn(5, 16, generator=gen)
        with torch.inference_mode():
            got = PackedLinear(linear, dtype, gelu=True)(x).float()
            want = nn.functional.gelu(linear(x))
        tolerance = 1e-4 if dtype == torch.float32 else 0.1
        return bool(torch.allclose(got, want, atol=tolerance, rtol=tolerance))
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        log.info("oneDNN prepacked linear (%s) unavailable, using torch's default: %s", dtype, exc)
        return False


def weights_version(model: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter of ``model`` is modified in place (optimizer steps,
    ``load_state_dict``) or replaced: tells when a derived copy is stale."""
    return tuple(v for p in model.parameters() for v in (id(p), p._version))
