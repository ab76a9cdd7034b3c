"""Model configurations a training run may name: networks' registry plus tiny test sizes.

The tiny ``*-32t`` configs (32 px, a few channels, style 64) exist so the
trainer's tests finish in seconds on a CPU; they are not meant to produce
useful avatars. The ``*-32s`` configs (32 px, style 128) are the budget size
of the LIA-vs-ViCoFace comparison in ``training.experiments``.
"""

from __future__ import annotations

from dataclasses import replace

from networks.config import ModelConfig, get_config, list_configs

_TINY_CHANNELS = (32, 32, 16, 16)
_SMALL32_CHANNELS = (128, 128, 64, 32)
TINY_CONFIGS: dict[str, ModelConfig] = {
    "lia-32t": ModelConfig("lia-32t", "lia", 32, _TINY_CHANNELS, style_dim=64, n_fc=2),
    "vicoface-32t": ModelConfig(
        "vicoface-32t", "vicoface", 32, _TINY_CHANNELS, style_dim=64, id_dim=10, n_fc=2
    ),
    "lia-32s": ModelConfig("lia-32s", "lia", 32, _SMALL32_CHANNELS, style_dim=128),
    "vicoface-32s": ModelConfig(
        "vicoface-32s", "vicoface", 32, _SMALL32_CHANNELS, style_dim=128, id_dim=10
    ),
}


def resolve_model_config(name: str) -> ModelConfig:
    """``networks.config.get_config(name)``, or one of the tiny training configs.

    A ViCoFace name with a ``-b<n>`` suffix (``"vicoface-32s-b5"``) is that
    config with ``n`` preservable directions instead of its own count (the
    study's ablation of the transferable / preservable split).
    """
    base, suffix, count = name.rpartition("-b")
    if suffix and base and count.isdigit():
        config = resolve_model_config(base)
        if config.family != "vicoface" or int(count) < 1:
            raise ValueError(f"{name}: a -b<n> suffix needs a ViCoFace config and n >= 1")
        return replace(config, name=name, id_dim=int(count))
    if name in TINY_CONFIGS:
        return TINY_CONFIGS[name]
    try:
        return get_config(name)
    except KeyError:
        choices = [*list_configs(), *TINY_CONFIGS]
        raise ValueError(f"unknown model config {name!r}; choose one of {choices}") from None


__all__ = ["TINY_CONFIGS", "resolve_model_config"]
