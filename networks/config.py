"""Model configurations: one frozen dataclass per network and a registry of named sizes.

Registered generators. Params = generator parameters; GFLOPs = one frame with
a cached avatar (driver encode + fc + generation, batch 1), counted like the
method notes (``networks.flops``: FlopCounterMode, 2 x MACs, convs incl. FIR
blurs and matmuls). CPU = ms per such frame, random weights, measured on the
shared 2-core EPYC VM (load average 4-6 from other jobs) with torch 2.13 and
onnxruntime 1.32, min / median; 1 thread figures are thread CPU time, which
the other jobs barely disturb (``python -m networks.flops --time`` gives the
2-thread torch wall time on an idle machine)::

    name           size  style  M      params       GFLOPs  torch 1T ms  ORT 1T ms
    lia-256        256   512    20     45,116,317   61.33   1041/1139    798/812
    vicoface-256   256   512    20+10  45,126,567   61.33   (= lia-256)
    lia-128s       128   256    20      6,152,682    1.736  50.1/52.8    29.1/30.0
    vicoface-128s  128   256    20+10   6,157,812    1.736  49.7/54.2    30.3/31.2
    lia-64s         64   256    20      2,181,471    0.377  21.5/25.1     9.9/11.6
    vicoface-64s    64   256    20+10   2,186,601    0.377  16.1/16.7     7.6/7.7

Channels at 4, 8, ... px: 256 = (512, 512, 512, 512, 256, 128, 64) (LIA's),
128s = (256, 256, 128, 64, 48, 24), 64s = (128, 128, 64, 48, 24).

With 2 threads on the same loaded VM: ORT 7.7 ms (64s) and 31 ms (128s) min
per frame; torch's 2-thread OpenMP pool degrades badly when the cores are
shared (71 / 173 ms min, slower than 1 thread), so prefer 1 torch thread or
ORT there. In a quieter moment torch with 2 threads ran a 0.38 GFLOP 64 px
config in ~13 ms and a 2.0 GFLOP 128 px config in ~37 ms; lia-256 took
0.61 s (min, loaded), the notes measured 1.05 s for LIA's fused code.

The ``s`` (small) configs keep the architecture, layer names and
coefficient sizes (20 transferable, + 10 preservable for ViCoFace) and shrink
the rest so one frame fits a 2-core CPU in real time: 64 px (target
0.2-0.5 GFLOPs) and 128 px (1-2 GFLOPs), ``style_dim`` 512 -> 256 (the
modulations, the affine MLP and the basis rows shrink with it; the coefficient
vector does not). Channels are thin at the fine scales, which dominate the
cost (the encoder's and decoder's largest maps run 3x3 convs at full size).
They are trained from scratch (or distilled): the released 256 px weights do
not fit them. The LIA twins exist for training comparisons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args, get_origin, get_type_hints

Family = Literal["lia", "vicoface"]
FAMILIES: tuple[Family, ...] = ("lia", "vicoface")

LIA_CHANNELS_256 = (512, 512, 512, 512, 256, 128, 64)
"""LIA's channels at 4, 8, 16, 32, 64, 128, 256 px (channel multiplier 1)."""


def _log2_exact(value: int) -> int:
    log = value.bit_length() - 1
    if value <= 0 or 1 << log != value:
        raise ValueError(f"expected a power of two, got {value}")
    return log


@dataclass(frozen=True)
class ModelConfig:
    """Size of one LIA / ViCoFace generator.

    Attributes:
        name: registry name (``"lia-256"``...); free text for custom configs.
        family: ``"lia"`` (one motion basis of ``motion_dim`` directions) or
            ``"vicoface"`` (transferable ``motion_dim`` + preservable
            ``id_dim`` directions in one jointly orthogonalised basis).
        size: image side in pixels, a power of two >= 8. The encoder has
            ``log2(size) - 2`` ResBlocks and the decoder as many scales.
        style_dim: latent code width (``wa``, the styles, the basis rows).
        motion_dim: transferable coefficients ``a`` (LIA's alpha).
        id_dim: preservable coefficients ``b``; 0 for LIA, > 0 for ViCoFace.
        channels: feature channels at 4, 8, ..., ``size`` px
            (``log2(size) - 1`` entries), shared by encoder and decoder: the
            decoder blends warped encoder features with its own at each scale.
        n_fc: EqualLinear layers in the (purely affine) motion MLP.
        blur_kernel: FIR taps of every blur / up / downsampling filter.
    """

    name: str
    family: Family
    size: int
    channels: tuple[int, ...]
    style_dim: int = 512
    motion_dim: int = 20
    id_dim: int = 0
    n_fc: int = 5
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if _log2_exact(self.size) < 3:
            raise ValueError(f"size must be a power of two >= 8, got {self.size}")
        if len(self.channels) != self.num_scales + 1:
            raise ValueError(
                f"{self.name}: channels needs {self.num_scales + 1} entries (4..{self.size} px),"
                f" got {len(self.channels)}"
            )
        if self.family == "lia" and self.id_dim != 0:
            raise ValueError(f"{self.name}: LIA has no preservable basis, id_dim must be 0")
        if self.family == "vicoface" and self.id_dim <= 0:
            raise ValueError(f"{self.name}: ViCoFace needs id_dim > 0")
        if min(self.channels) <= 0 or self.style_dim <= 0 or self.motion_dim <= 0:
            raise ValueError(f"{self.name}: channels, style_dim and motion_dim must be positive")
        if self.coeff_dim > self.style_dim:
            raise ValueError(f"{self.name}: motion_dim + id_dim must not exceed style_dim")
        if self.n_fc < 1:
            raise ValueError(f"{self.name}: n_fc must be >= 1")

    @property
    def num_scales(self) -> int:
        """Decoder scales (8 .. size px) = encoder ResBlocks = warped feature maps."""
        return _log2_exact(self.size) - 2

    @property
    def coeff_dim(self) -> int:
        """Width of the coefficient vector ``[a ; b]`` (``M``)."""
        return self.motion_dim + self.id_dim

    def channels_at(self, resolution: int) -> int:
        """Channels of the feature maps at ``resolution`` px."""
        return self.channels[_log2_exact(resolution) - 2]

    @property
    def feature_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """``(C, H, W)`` of the cached encoder features, coarse (8 px) to fine."""
        res = [2 ** (i + 3) for i in range(self.num_scales)]
        return tuple((self.channels_at(r), r, r) for r in res)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of ``asdict``; raises ValueError naming unknown or missing fields."""
        return _dataclass_from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Size of the StyleGAN2 ResNet discriminator.

    Attributes:
        size: input image side (power of two >= 8); ``log2(size) - 2`` ResBlocks.
        channels: channels at 4, 8, ..., ``size`` px (as in ModelConfig).
        stddev_group: minibatch-stddev group size (the batch must be a
            multiple of ``min(batch, stddev_group)``).
        blur_kernel: FIR taps of the downsampling blurs.
    """

    size: int
    channels: tuple[int, ...]
    stddev_group: int = 4
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self) -> None:
        if _log2_exact(self.size) < 3:
            raise ValueError(f"size must be a power of two >= 8, got {self.size}")
        if len(self.channels) != _log2_exact(self.size) - 1:
            raise ValueError(f"channels needs one entry per resolution 4..{self.size}")

    def channels_at(self, resolution: int) -> int:
        return self.channels[_log2_exact(resolution) - 2]

    @classmethod
    def for_model(cls, config: ModelConfig) -> DiscriminatorConfig:
        """The discriminator LIA pairs with a generator: same size and channels."""
        return cls(size=config.size, channels=config.channels, blur_kernel=config.blur_kernel)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiscriminatorConfig:
        return _dataclass_from_dict(cls, data)


def _dataclass_from_dict(cls: Any, data: Mapping[str, Any]) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"a {cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    hints = get_type_hints(cls)
    wrong = sorted(k for k, v in values.items() if not _typed(v, hints[k]))
    if wrong:
        raise ValueError(f"{cls.__name__} fields of the wrong type: "
                         + ", ".join(f"{k}={values[k]!r}" for k in wrong))
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"incomplete {cls.__name__}: {exc}") from exc


def _typed(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a config field: text, an integer (not a bool), a tuple
    of integers, or one of a Literal's values."""
    origin = get_origin(hint)
    if origin is tuple:
        return isinstance(value, tuple) and all(_typed(v, get_args(hint)[0]) for v in value)
    if origin is Literal:
        return value in get_args(hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return not isinstance(hint, type) or isinstance(value, hint)


def _lia(name: str, size: int, channels: tuple[int, ...], style_dim: int = 512) -> ModelConfig:
    return ModelConfig(name, "lia", size, channels, style_dim=style_dim)


def _vicoface(name: str, size: int, channels: tuple[int, ...], style_dim: int = 512) -> ModelConfig:
    return ModelConfig(name, "vicoface", size, channels, style_dim=style_dim, id_dim=10)


SMALL_64_CHANNELS = (128, 128, 64, 48, 24)
SMALL_128_CHANNELS = (256, 256, 128, 64, 48, 24)
SMALL_STYLE_DIM = 256

_REGISTRY: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        _lia("lia-256", 256, LIA_CHANNELS_256),
        _vicoface("vicoface-256", 256, LIA_CHANNELS_256),
        _lia("lia-128s", 128, SMALL_128_CHANNELS, SMALL_STYLE_DIM),
        _vicoface("vicoface-128s", 128, SMALL_128_CHANNELS, SMALL_STYLE_DIM),
        _lia("lia-64s", 64, SMALL_64_CHANNELS, SMALL_STYLE_DIM),
        _vicoface("vicoface-64s", 64, SMALL_64_CHANNELS, SMALL_STYLE_DIM),
    )
}


def list_configs() -> list[str]:
    """Names accepted by ``get_config``."""
    return list(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    """The registered ModelConfig called ``name`` (see ``list_configs``)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model config {name!r}; choose one of {list_configs()}") from None


def custom_config(base: str | ModelConfig, **changes: Any) -> ModelConfig:
    """A copy of a config with some fields changed (validated like any config)."""
    config = get_config(base) if isinstance(base, str) else base
    return replace(config, **changes)


__all__ = [
    "FAMILIES",
    "DiscriminatorConfig",
    "Family",
    "ModelConfig",
    "custom_config",
    "get_config",
    "list_configs",
]
