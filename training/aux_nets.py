"""Auxiliary networks for the identity and landmark losses.

Two sources, one protocol each (``training.losses.IdentityEmbedder`` and
``LandmarkDetector``):

* The synthetic world: vicocam trains two tiny CNNs from the renderer's
  labels, `TinyIdentityEmbedder` (a classifier over the training identities
  whose pooled features are the embedding) and `TinyLandmarkRegressor`
  (regresses the renderer's landmarks). ``train_identity_embedder`` and
  ``train_landmark_regressor`` fit them in a minute or two on CPU; they are
  saved as ``.safetensors`` with their config in the metadata.
* Real faces: the user supplies pretrained TorchScript modules (e.g. an
  ArcFace embedder, a landmark network) with the protocol's input/output
  convention; ``load_identity_embedder`` / ``load_landmark_detector`` wrap
  them, resizing the input to the size the module expects.

Everything loaded is frozen (eval mode, no parameter grads): the losses
differentiate through the network, never into it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

NetT = TypeVar("NetT", bound=nn.Module)
AuxKind = Literal["identity", "landmarks"]
_FORMAT = "vicocam-aux-v1"


@dataclass(frozen=True)
class AuxNetConfig:
    """Shape of a tiny auxiliary CNN.

    Attributes:
        kind: ``"identity"`` (embedding + class head) or ``"landmarks"``.
        input_size: images are resized to this side before the CNN.
        channels: widths of the stride-2 conv stages.
        out_dim: embedding width (identity) or number of landmarks K (landmarks).
        num_classes: training identities (identity head); 0 for landmarks.
    """

    kind: AuxKind
    input_size: int = 64
    channels: tuple[int, ...] = (32, 64, 96, 128)
    out_dim: int = 64
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("identity", "landmarks"):
            raise ValueError(f"kind must be 'identity' or 'landmarks', got {self.kind!r}")
        if self.kind == "identity" and self.num_classes < 2:
            raise ValueError("an identity embedder needs num_classes >= 2 training identities")


def _backbone(channels: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch in channels:
        layers += [
            nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1),
            nn.GroupNorm(min(8, out_ch), out_ch),
            nn.SiLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            nn.SiLU(),
        ]
        in_ch = out_ch
    return nn.Sequential(*layers)


class _TinyNet(nn.Module):
    def __init__(self, config: AuxNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = _backbone(config.channels)

    def _features(self, images: Tensor) -> Tensor:
        size = self.config.input_size
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, (size, size), mode="bilinear", antialias=True)
        return self.backbone(images)


class TinyIdentityEmbedder(_TinyNet):
    """``[B, 3, H, W]`` in [-1, 1] -> embedding ``[B, out_dim]`` (L2-normalised).

    ``classify`` adds the cosine-softmax head used to train it on identity labels.
    """

    def __init__(self, config: AuxNetConfig) -> None:
        super().__init__(config)
        self.embed = nn.Linear(config.channels[-1], config.out_dim)
        self.head = nn.Parameter(torch.randn(config.num_classes, config.out_dim) * 0.1)

    def forward(self, images: Tensor) -> Tensor:
        pooled = self._features(images).mean((2, 3))
        return F.normalize(self.embed(pooled), dim=1)

    def classify(self, images: Tensor, scale: float = 16.0) -> Tensor:
        """Logits ``[B, num_classes]``: scaled cosine to each class centre."""
        return scale * self(images) @ F.normalize(self.head, dim=1).t()


class TinyLandmarkRegressor(_TinyNet):
    """``[B, 3, H, W]`` in [-1, 1] -> landmarks ``[B, out_dim, 2]`` (x, y) in [-1, 1]."""

    def __init__(self, config: AuxNetConfig) -> None:
        super().__init__(config)
        reduced = config.input_size // 2 ** len(config.channels)
        self.regress = nn.Sequential(
            nn.Flatten(), nn.Linear(config.channels[-1] * reduced * reduced, 2 * config.out_dim)
        )

    def forward(self, images: Tensor) -> Tensor:
        out = self.regress(self._features(images))
        return torch.tanh(out).view(images.shape[0], self.config.out_dim, 2)


def build_aux_net(config: AuxNetConfig) -> TinyIdentityEmbedder | TinyLandmarkRegressor:
    if config.kind == "identity":
        return TinyIdentityEmbedder(config)
    return TinyLandmarkRegressor(config)


def save_aux_net(net: TinyIdentityEmbedder | TinyLandmarkRegressor, path: str | Path) -> None:
    """Write ``net`` as safetensors with its config in the metadata."""
    from safetensors.torch import save_file

    config = asdict(net.config)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": _FORMAT, "config": json.dumps(config)})


def load_aux_net(path: str | Path) -> TinyIdentityEmbedder | TinyLandmarkRegressor:
    """Inverse of ``save_aux_net``: a frozen network in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"auxiliary network not found: {path}")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a vicocam auxiliary network (no {_FORMAT} metadata)")
    raw = json.loads(meta["config"])
    raw["channels"] = tuple(raw["channels"])
    net = build_aux_net(AuxNetConfig(**raw))
    net.load_state_dict(load_file(str(path)))
    return freeze(net)


def freeze(net: NetT) -> NetT:
    """Eval mode and no parameter grads (the loss differentiates through, not into)."""
    net.eval()
    net.requires_grad_(False)
    return net


class ScriptedNet(nn.Module):
    """A user's TorchScript module behind the protocol: resizes to ``input_size`` first."""

    def __init__(self, module: nn.Module, input_size: int | None) -> None:
        super().__init__()
        self.module = module
        self.input_size = input_size

    def forward(self, images: Tensor) -> Tensor:
        if self.input_size is not None:
            size = (self.input_size, self.input_size)
            images = F.interpolate(images, size, mode="bilinear", antialias=True)
        out: Tensor = self.module(images)
        return out


def _load_any(path: str | Path, input_size: int | None) -> nn.Module:
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_aux_net(path)
    if not path.is_file():
        raise FileNotFoundError(f"network not found: {path}")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise ValueError(
            f"{path}: not a TorchScript module; export yours with torch.jit.script/trace"
            " and save it with torch.jit.save"
        ) from exc
    return freeze(ScriptedNet(module, input_size))


def load_identity_embedder(path: str | Path, input_size: int | None = 112) -> nn.Module:
    """A frozen IdentityEmbedder from ``.safetensors`` (ours) or TorchScript (``input_size``)."""
    return _load_any(path, input_size)


def load_landmark_detector(path: str | Path, input_size: int | None = 224) -> nn.Module:
    """A frozen LandmarkDetector from ``.safetensors`` (ours) or TorchScript (``input_size``)."""
    return _load_any(path, input_size)


@dataclass(frozen=True)
class AuxTrainConfig:
    """How long and how fast to fit an auxiliary net (CPU-friendly defaults)."""

    steps: int = 600
    lr: float = 2e-3
    seed: int = 0
    log_every: int = 100


Batches = Iterable[tuple[Tensor, Tensor]]


def _fit(
    net: nn.Module,
    batches: Iterator[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    config: AuxTrainConfig,
) -> float:
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, total_steps=config.steps)
    net.train()
    loss = torch.zeros(())
    for step in range(config.steps):
        images, targets = next(batches)
        loss = loss_fn(images, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % config.log_every == 0 or step == config.steps - 1:
            log.info("aux step %d/%d loss %.4f", step, config.steps, float(loss.detach()))
    return float(loss.detach())


def train_identity_embedder(
    batches: Iterator[tuple[Tensor, Tensor]],
    num_classes: int,
    config: AuxTrainConfig = AuxTrainConfig(),
    net_config: AuxNetConfig | None = None,
) -> TinyIdentityEmbedder:
    """Fit on ``(images [B,3,H,W], labels [B] int in [0, num_classes))`` batches."""
    torch.manual_seed(config.seed)
    cfg = net_config or AuxNetConfig("identity", num_classes=num_classes)
    net = TinyIdentityEmbedder(cfg)
    _fit(net, batches, lambda x, y: F.cross_entropy(net.classify(x), y), config)
    freeze(net)
    return net


def train_landmark_regressor(
    batches: Iterator[tuple[Tensor, Tensor]],
    num_landmarks: int,
    config: AuxTrainConfig = AuxTrainConfig(),
    net_config: AuxNetConfig | None = None,
) -> TinyLandmarkRegressor:
    """Fit on ``(images [B,3,H,W], landmarks [B,K,2] in [-1, 1])`` batches (smooth L1)."""
    torch.manual_seed(config.seed)
    cfg = net_config or AuxNetConfig("landmarks", out_dim=num_landmarks)
    net = TinyLandmarkRegressor(cfg)
    _fit(net, batches, lambda x, y: F.smooth_l1_loss(net(x), y, beta=0.05), config)
    freeze(net)
    return net


__all__ = [
    "AuxNetConfig",
    "AuxTrainConfig",
    "ScriptedNet",
    "TinyIdentityEmbedder",
    "TinyLandmarkRegressor",
    "build_aux_net",
    "freeze",
    "load_aux_net",
    "load_identity_embedder",
    "load_landmark_detector",
    "save_aux_net",
    "train_identity_embedder",
    "train_landmark_regressor",
]
