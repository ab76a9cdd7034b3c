"""Reading and writing network weights without executing anything from the file.

Two formats:

* **Release files** of LIA / ViCoFace (``vox.pt``, ``660000.pt``): a torch
  pickle holding ``{'gen', 'dis'?, 'g_optim'?, 'd_optim'?, 'args'?}`` (``args``
  an ``argparse.Namespace``), or a bare generator state dict. They are read
  with ``torch.load(weights_only=True)``, allowing ``argparse.Namespace`` and
  nothing else: a file that pickles any other global (a function, a class...)
  is refused with ``UnsafeCheckpointError`` naming it, before anything in it
  runs. The family and size are detected from the tensors (``infer_config``).
* **vicocam checkpoints**: ``safetensors`` files (no code at all) with the
  generator tensors under ``gen.``, optionally the discriminator's under
  ``dis.``, and the ModelConfig / DiscriminatorConfig as JSON in the metadata.

Every checkpoint also says what its model was trained on (`TrainingDomain`,
see `checkpoint_domain`): a model of vicocam's synthetic world distorts real
faces, and the commands warn when one is asked to animate them.

Every failure is a ``CheckpointError`` with a message that says what to do:
corrupt or truncated files, unknown formats, checkpoints that do not fit a
configuration (the message lists missing, unexpected and mis-shaped tensors),
tensors that are not floating point, and NaN or infinite weights. The fit is
checked on a network built on the meta device, before any weight is allocated.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from networks.config import DiscriminatorConfig, Family, ModelConfig, get_config, list_configs
from networks.discriminator import Discriminator
from networks.generator import Generator

StateDict = dict[str, Tensor]

SAFE_FORMAT = "vicocam-checkpoint"
SAFE_FORMAT_VERSION = "1"
DOMAIN_KEY = "training_domain"
"""The metadata entry of a vicocam checkpoint that holds its `TrainingDomain`."""
DEFAULT_MOTION_DIM = 20
_MAX_LISTED = 8


class TrainingDomain(enum.StrEnum):
    """What a model was trained on, which bounds what it can animate well.

    SYNTHETIC_WORLD: vicocam's synthetic talking-head world only (the bundled
        demo model, ``vicocam train`` without ``--data``); photographs and real
        cameras come out distorted.
    REAL_FACES: real video clips: the LIA / ViCoFace release files, and
        ``vicocam train --data ROOT``.
    UNKNOWN: a vicocam checkpoint that does not say (written before the
        domain was recorded).
    """

    SYNTHETIC_WORLD = "synthetic-world"
    REAL_FACES = "real-faces"
    UNKNOWN = "unknown"


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message says why and what to do."""


class UnsafeCheckpointError(CheckpointError):
    """The file pickles a global other than ``argparse.Namespace``; nothing was executed."""

    def __init__(self, path: Path, global_name: str) -> None:
        self.global_name = global_name
        super().__init__(
            f"refusing to load {path}: it pickles the global {global_name!r}, and loading it"
            " would execute code from the file. Only tensors, plain containers and"
            " argparse.Namespace are accepted. If you trust the file's origin, open it in an"
            " isolated environment, keep only its tensor dicts and save those again."
        )


class CheckpointMismatchError(CheckpointError):
    """The tensors do not fit the network; lists what is missing, extra or mis-shaped."""

    def __init__(
        self,
        what: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        hint: str = "",
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_listing(unexpected)}")
        if mismatched:
            shapes = [f"{k} (checkpoint {list(c)}, model {list(m)})" for k, c, m in mismatched]
            parts.append(f"{len(mismatched)} with another shape: {_listing(shapes)}")
        super().__init__(f"checkpoint does not fit {what}: " + "; ".join(parts) + hint)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------
# Fitting tensors to a network
# ---------------------------------------------------------------------------


def check_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> None:
    """Raise CheckpointMismatchError unless ``state_dict`` has exactly the module's tensors."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(v.shape), expected[k])
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(what, missing, unexpected, mismatched)
    check_values(module, state_dict, what)


def check_values(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> None:
    """Raise CheckpointError for values the network cannot use: a tensor that is not
    floating point where the network holds floats (integers, booleans and complex numbers
    would be cast silently), or NaN or infinite weights (a damaged file or a diverged run)."""
    expected = module.state_dict()
    wrong = [f"{k} ({v.dtype})" for k, v in state_dict.items()
             if expected[k].is_floating_point() and not v.is_floating_point()]
    if wrong:
        raise CheckpointError(f"checkpoint does not fit {what}: {len(wrong)} tensors are not "
                              f"floating point: {_listing(wrong)}")
    broken = [k for k, v in state_dict.items() if v.is_floating_point()
              and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"checkpoint for {what} holds NaN or infinite weights in "
                              f"{len(broken)} tensors: {_listing(broken)}; the file is damaged "
                              "or its training diverged: use an earlier checkpoint")


def check_fit(build: Callable[[], nn.Module], state_dict: Mapping[str, Tensor], what: str) -> None:
    """`check_state_dict` against the network ``build`` makes, built on the meta device.

    Nothing is allocated: a configuration read from a file that names a huge
    network is refused by the shapes of its tensors before any weight exists.
    The first use of the meta device costs about a second (torch imports its
    compiler stack), so the generator's path uses `_check_declared` instead.
    """
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"cannot build {what}: {exc}") from None
    check_state_dict(skeleton, state_dict, what)


def load_checked(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> None:
    """``check_state_dict`` then a strict ``load_state_dict``."""
    check_state_dict(module, state_dict, what)
    module.load_state_dict(state_dict, strict=True)


# ---------------------------------------------------------------------------
# Detecting the configuration from the tensors
# ---------------------------------------------------------------------------


def _indices(state_dict: Mapping[str, Tensor], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return sorted(found)


def _tensor(state_dict: Mapping[str, Tensor], key: str) -> Tensor:
    """The tensor under ``key``, at least 1-D (its sizes name the configuration)."""
    if key not in state_dict:
        raise CheckpointError(
            f"not a LIA/ViCoFace generator state dict: no tensor {key!r}"
            f" (found {len(state_dict)} tensors, e.g. {_listing(sorted(state_dict))})"
        )
    if state_dict[key].ndim == 0:
        raise CheckpointError(f"not a LIA/ViCoFace generator state dict: {key!r} is a scalar")
    return state_dict[key]


def _split_coefficients(coeff_dim: int, args: Mapping[str, Any]) -> tuple[int, int]:
    """(motion_dim, id_dim): from the training args if present, else LIA's 20 directions."""
    motion = args.get("latent_dim_motion", args.get("motion_dim"))
    ident = args.get("latent_dim_id", args.get("id_dim"))
    if isinstance(motion, int) and isinstance(ident, int) and motion + ident == coeff_dim:
        return motion, ident
    if isinstance(motion, int) and 0 < motion <= coeff_dim:
        return motion, coeff_dim - motion
    motion = min(coeff_dim, DEFAULT_MOTION_DIM)
    return motion, coeff_dim - motion


def infer_config(
    state_dict: Mapping[str, Tensor], args: Mapping[str, Any] | None = None
) -> ModelConfig:
    """The ModelConfig a generator state dict was made with, read from tensor shapes.

    Size = 2 ** (number of ``enc.net_app.convs``); channels from the encoder
    convs; M from the last ``enc.fc`` layer. The split of M into ``a`` and ``b``
    uses ``args`` (``latent_dim_motion`` / ``latent_dim_id``) when given, else
    LIA's 20 transferable directions (M = 20: LIA; M > 20: ViCoFace). Returns
    the registered config when one matches, else one named ``<family>-<size>-custom``.
    """
    sd, args = state_dict, args or {}
    n_convs = len(_indices(sd, "enc.net_app.convs."))
    if n_convs < 3:  # 1x1 conv, at least one ResBlock, the 4x4 read-out
        _tensor(sd, f"enc.net_app.convs.{n_convs}.weight")  # raises, naming what is absent
    size = 2**n_convs
    channels = [_tensor(sd, "enc.net_app.convs.0.0.weight").shape[0]]
    for i in range(1, n_convs - 1):
        channels.append(_tensor(sd, f"enc.net_app.convs.{i}.conv2.1.weight").shape[0])
    style_dim = _tensor(sd, f"enc.net_app.convs.{n_convs - 1}.weight").shape[0]
    fc = _indices(sd, "enc.fc.")
    coeff_dim = _tensor(sd, f"enc.fc.{fc[-1] if fc else 0}.weight").shape[0]
    motion_dim, id_dim = _split_coefficients(coeff_dim, args)
    family: Family = "vicoface" if id_dim else "lia"
    try:
        config = ModelConfig(
            name=f"{family}-{size}-custom",
            family=family,
            size=size,
            channels=tuple(reversed(channels)),
            style_dim=style_dim,
            motion_dim=motion_dim,
            id_dim=id_dim,
            n_fc=len(fc),
        )
    except ValueError as exc:
        raise CheckpointError(f"inconsistent generator tensors: {exc}") from None
    return _registered_twin(config)


def _registered_twin(config: ModelConfig) -> ModelConfig:
    for name in list_configs():
        known = get_config(name)
        if replace(known, name=config.name) == config:
            return known
    return config


# ---------------------------------------------------------------------------
# Release files (torch pickles)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseCheckpoint:
    """The content of a LIA / ViCoFace training or release file.

    Attributes:
        generator: ``checkpoint['gen']`` (``module.`` prefixes removed).
        config: detected from ``generator`` (see ``infer_config``).
        discriminator: ``checkpoint['dis']`` or None.
        args: ``vars(checkpoint['args'])``, empty without args.
        extras: every other top-level entry (optimiser states...).
    """

    generator: StateDict
    config: ModelConfig
    discriminator: StateDict | None = None
    args: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> TrainingDomain:
        """Always `TrainingDomain.REAL_FACES`: the authors released models of real video."""
        return TrainingDomain.REAL_FACES


_GLOBAL_IN_MESSAGE = re.compile(
    r"(?:Unsupported global: GLOBAL|Trying to load unsupported GLOBAL) ([\w.]+)")
"""torch's two wordings of a refused global (2.4-2.5, and 2.6+ e.g. 'Trying to load
unsupported GLOBAL posix.system whose module posix is blocked')."""


def _torch_load(path: Path) -> Any:
    """``torch.load`` with only argparse.Namespace allowed beyond tensors and containers."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        match = _GLOBAL_IN_MESSAGE.search(str(exc))
        if match:
            raise UnsafeCheckpointError(path, match.group(1)) from None
        if "Weights only load failed" in str(exc):
            raise CheckpointError(f"refusing to load {path}: {_unpickler_reason(exc)}") from None
        raise CheckpointError(
            f"cannot read {path}: the file is corrupt or truncated ({type(exc).__name__}:"
            f" {str(exc)[:200]}). Download or copy it again."
        ) from None


def _unpickler_reason(exc: Exception) -> str:
    """torch's reason for refusing a file, without its advice to load with weights_only=False
    (that would run whatever code the file carries)."""
    lines = [line.strip() for line in str(exc).split("WeightsUnpickler error:")[-1].splitlines()]
    kept = [line for line in lines if line and "weights_only" not in line
            and not line.startswith(("Weights only load failed", "Check the documentation"))]
    return kept[0] if kept else "it holds objects other than tensors and plain containers"


def _strip_module_prefix(state_dict: Mapping[str, Tensor]) -> StateDict:
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _as_state_dict(value: Any, path: Path, entry: str) -> StateDict:
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items()):
        raise CheckpointError(f"{path}: {entry!r} is not a dict of tensors by name")
    return _strip_module_prefix(value)


def read_release_checkpoint(path: str | Path) -> ReleaseCheckpoint:
    """Read a LIA / ViCoFace ``.pt`` file safely (see module doc)."""
    path = Path(path)
    data = _torch_load(path)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: expected a dict, found {type(data).__name__}")
    if "gen" not in data:  # a bare generator state dict
        data = {"gen": data}
    generator = _as_state_dict(data["gen"], path, "gen")
    raw_args = data.get("args")
    if isinstance(raw_args, argparse.Namespace):
        raw_args = vars(raw_args)
    args = dict(raw_args) if isinstance(raw_args, Mapping) else {}
    dis = data.get("dis")
    return ReleaseCheckpoint(
        generator=generator,
        config=infer_config(generator, args),
        discriminator=None if dis is None else _as_state_dict(dis, path, "dis"),
        args=args,
        extras={k: v for k, v in data.items() if k not in ("gen", "dis", "args")},
    )


# ---------------------------------------------------------------------------
# vicocam checkpoints (safetensors)
# ---------------------------------------------------------------------------


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError(
            "vicocam checkpoints need the 'safetensors' package: pip install safetensors"
        ) from None
    return safetensors


@dataclass(frozen=True)
class Checkpoint:
    """A vicocam checkpoint: generator (and optional discriminator) tensors with configs.

    ``metadata`` holds the caller's extra string entries (iteration, notes...);
    ``domain`` what the model was trained on (``UNKNOWN`` when the file does not say).
    """

    config: ModelConfig
    generator: StateDict
    discriminator_config: DiscriminatorConfig | None = None
    discriminator: StateDict | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    domain: TrainingDomain = TrainingDomain.UNKNOWN


def save_checkpoint(
    path: str | Path,
    generator: Generator,
    discriminator: Discriminator | None = None,
    metadata: Mapping[str, str] | None = None,
    domain: TrainingDomain = TrainingDomain.UNKNOWN,
) -> None:
    """Write ``generator`` (and ``discriminator``) with their configs and training domain
    as safetensors."""
    tensors = {f"gen.{k}": v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    meta = {f"user.{k}": str(v) for k, v in (metadata or {}).items()}
    meta |= {
        "format": SAFE_FORMAT,
        "format_version": SAFE_FORMAT_VERSION,
        "model_config": generator.config.to_json(),
        DOMAIN_KEY: str(TrainingDomain(domain)),
    }
    if discriminator is not None:
        dis = discriminator.state_dict().items()
        tensors |= {f"dis.{k}": v.detach().cpu().contiguous() for k, v in dis}
        meta["discriminator_config"] = json.dumps(asdict(discriminator.config))
    _safetensors().torch.save_file(tensors, str(path), metadata=meta)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a vicocam safetensors checkpoint written by ``save_checkpoint``."""
    path = Path(path)
    meta, tensors = _read_safetensors(path)
    if meta.get("format") != SAFE_FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a vicocam checkpoint")
    try:
        config = ModelConfig.from_json(meta["model_config"])
        dis_json = meta.get("discriminator_config")
        dis_config = (
            None if dis_json is None else DiscriminatorConfig.from_dict(json.loads(dis_json))
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid configuration metadata ({exc})") from None
    gen = {k[4:]: v for k, v in tensors.items() if k.startswith("gen.")}
    dis = {k[4:]: v for k, v in tensors.items() if k.startswith("dis.")}
    user = {k[5:]: v for k, v in meta.items() if k.startswith("user.")}
    _check_declared(config, gen, path)
    return Checkpoint(config, gen, dis_config, dis or None, user, _domain(meta))


def _check_declared(config: ModelConfig, generator: StateDict, path: Path) -> None:
    """Refuse metadata that names another network than the tensors make, before any is
    built: a configuration naming a huge network would otherwise be allocated whole."""
    made = infer_config(generator, {"latent_dim_motion": config.motion_dim,
                                    "latent_dim_id": config.id_dim})
    kernel = generator.get(_KERNEL_KEY)
    taps = None if kernel is None else kernel.shape[-1]
    if _sizes(made) != _sizes(config) or taps != len(config.blur_kernel):
        raise CheckpointError(f"{path}: its metadata names {_sizes(config)} (size, channels, "
                              f"style, motion, id, fc), its tensors make {_sizes(made)}; "
                              "the file is damaged: copy it again")


_KERNEL_KEY = "enc.net_app.convs.1.conv2.0.kernel"
"""A blur kernel of every generator: its side is the number of taps (``blur_kernel``)."""


def _sizes(config: ModelConfig) -> tuple[object, ...]:
    """What sets a generator's tensor shapes, blur taps apart."""
    c = config
    return (c.size, tuple(c.channels), c.style_dim, c.motion_dim, c.id_dim, c.n_fc)


def _domain(meta: Mapping[str, str]) -> TrainingDomain:
    """The domain a checkpoint's metadata names; ``UNKNOWN`` when absent or unrecognised
    (a newer vicocam's value must not stop an older one from loading the weights)."""
    value = meta.get(DOMAIN_KEY, "")
    known = {str(d) for d in TrainingDomain}
    return TrainingDomain(value) if value in known else TrainingDomain.UNKNOWN


def checkpoint_domain(path: str | Path) -> TrainingDomain:
    """What the model in ``path`` was trained on, without reading its tensors.

    Release ``.pt`` files are ``REAL_FACES`` (vicocam itself writes only
    safetensors models); a vicocam checkpoint says it in its metadata.
    """
    path = Path(path)
    if checkpoint_format(path) == "torch":
        return TrainingDomain.REAL_FACES
    meta = _read_safetensors_metadata(path)
    if meta.get("format") != SAFE_FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a vicocam checkpoint")
    return _domain(meta)


@contextlib.contextmanager
def _safetensors_file(path: Path) -> Iterator[Any]:
    """An open safetensors file; any failure reading it is one `CheckpointError`."""
    try:
        with _safetensors().safe_open(str(path), framework="pt", device="cpu") as handle:
            yield handle
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {path}: the file is corrupt or truncated ({exc}). Copy it again."
        ) from None


def _read_safetensors_metadata(path: Path) -> dict[str, str]:
    with _safetensors_file(path) as handle:
        return dict(handle.metadata() or {})


def _read_safetensors(path: Path) -> tuple[dict[str, str], StateDict]:
    with _safetensors_file(path) as handle:
        meta = dict(handle.metadata() or {})
        # safe_open handles have keys() but are not iterable.
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    return meta, tensors


# ---------------------------------------------------------------------------
# One entry point for any format
# ---------------------------------------------------------------------------


def checkpoint_format(path: str | Path) -> str:
    """``"safetensors"``, ``"torch"`` (zip or legacy pickle); CheckpointError otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
    except OSError as exc:
        raise CheckpointError(f"cannot open checkpoint {path}: {exc}") from None
    # safetensors first: its 8-byte header length may itself start with 0x80.
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # zip, or legacy pickle
        return "torch"
    raise CheckpointError(
        f"{path} is neither a torch checkpoint nor a safetensors file"
        f" ({len(head)} first bytes {head!r}); the file may be truncated or not a checkpoint"
    )


def load_generator(
    path: str | Path, config: ModelConfig | str | None = None, device: str | torch.device = "cpu"
) -> Generator:
    """Build and strictly load a Generator from a release ``.pt`` or a vicocam checkpoint.

    ``config=None`` uses the configuration stored or detected in the file;
    an explicit config must fit the tensors exactly (CheckpointMismatchError
    otherwise). The returned generator is in eval mode.
    """
    path = Path(path)
    if checkpoint_format(path) == "torch":
        release = read_release_checkpoint(path)
        found, tensors = release.config, release.generator
    else:
        saved = read_checkpoint(path)
        found, tensors = saved.config, saved.generator
    wanted = found if config is None else get_config(config) if isinstance(config, str) else config
    generator = Generator(wanted)
    try:
        check_state_dict(generator, tensors, f"config {wanted.name!r}")
    except CheckpointMismatchError as exc:
        hint = f". {path} looks like {found.name!r}: pass that config or config=None."
        raise CheckpointMismatchError(
            f"config {wanted.name!r}", exc.missing, exc.unexpected, exc.mismatched, hint
        ) from None
    generator.load_state_dict(tensors, strict=True)
    return generator.to(device).eval()


def load_discriminator(path: str | Path, device: str | torch.device = "cpu") -> Discriminator:
    """The discriminator of a release ``.pt`` (size from the generator) or a vicocam checkpoint."""
    path = Path(path)
    config: DiscriminatorConfig | None
    if checkpoint_format(path) == "torch":
        release = read_release_checkpoint(path)
        config, tensors = DiscriminatorConfig.for_model(release.config), release.discriminator
    else:
        saved = read_checkpoint(path)
        config, tensors = saved.discriminator_config, saved.discriminator
    if tensors is None or config is None:
        raise CheckpointError(f"{path} holds no discriminator")
    check_fit(lambda: Discriminator(config), tensors, "the discriminator")
    discriminator = Discriminator(config)
    load_checked(discriminator, tensors, "the discriminator")
    return discriminator.to(device)
