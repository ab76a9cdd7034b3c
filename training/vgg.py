"""VGG19 feature extractor (relu1_1 .. relu5_1) for the perceptual loss.

The layer layout is torchvision's ``vgg19().features`` up to index 29
(relu5_1), with the same module indices, so a torchvision-format ImageNet
state dict (``features.N.weight`` / ``features.N.bias``; the ``classifier.*``
keys are ignored) loads key for key. Nothing is downloaded: the user gives
the weights file (``.pth``/``.pt`` state dict or ``.safetensors``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

# torchvision VGG19 "E" configuration up to relu5_1: ints are conv widths, "M" max-pools.
_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512,
)  # fmt: skip
# Index (in ``features``) of the ReLU after the first conv of each block.
RELU_TAPS: tuple[int, ...] = (1, 6, 11, 20, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            out_ch = int(item)
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """Frozen VGG19 returning relu1_1..relu5_1 for images in [-1, 1].

    ``forward(x [B, 3, H, W] in [-1, 1])`` -> five maps, ``[B, 64, H, W]`` to
    ``[B, 512, H/16, W/16]``. ``clamp`` clips the input to [-1, 1] first (LIA
    does, ViCoFace does not). Parameters never require grad.
    """

    def __init__(self, clamp: bool = True) -> None:
        super().__init__()
        self.features = _build_features()
        self.clamp = clamp
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        # Always eval: the extractor is a fixed measuring instrument.
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.clamp:
            x = x.clamp(-1.0, 1.0)
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        taps: list[Tensor] = []
        for index, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d) and min(x.shape[-2:]) < 2:
                # Small pyramid levels (8 px at 64 px training) stop early:
                # the deeper taps do not exist for them.
                break
            x = layer(x)
            if index in RELU_TAPS:
                taps.append(x)
            if index == RELU_TAPS[-1]:
                break
        return taps


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_vgg19(path: str | Path, clamp: bool = True) -> VGG19Features:
    """A VGG19Features with torchvision-format ImageNet weights from ``path``.

    Raises FileNotFoundError / ValueError with what to provide when the file
    is missing or does not hold ``features.*`` tensors of the VGG19 shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG19 weights not found at {path}: give a torchvision-format ImageNet"
            " vgg19 state dict (e.g. vgg19-dcbb9e9d.pth)"
        )
    state = _read_state_dict(path)
    model = VGG19Features(clamp=clamp)
    wanted = model.features.state_dict()
    found = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ValueError(f"{path}: not a VGG19 state dict, missing features.{missing[0]} ...")
    for key, target in wanted.items():
        if found[key].shape != target.shape:
            raise ValueError(
                f"{path}: features.{key} has shape {list(found[key].shape)},"
                f" VGG19 needs {list(target.shape)}"
            )
    model.features.load_state_dict({k: found[k] for k in wanted})
    return model


def maybe_load_vgg19(path: str | Path | None, clamp: bool = True) -> VGG19Features | None:
    """``load_vgg19(path)``, or None with a logged warning when no path is given."""
    if path is None:
        log.warning(
            "perceptual (VGG) loss is OFF: no VGG19 weights given. Pass a torchvision-format"
            " ImageNet vgg19 state dict (--vgg-weights PATH) to enable it."
        )
        return None
    return load_vgg19(path, clamp=clamp)


__all__ = ["RELU_TAPS", "VGG19Features", "load_vgg19", "maybe_load_vgg19"]
