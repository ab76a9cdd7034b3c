"""The one wording of the warning that a model of the synthetic world meets real faces.

The bundled demo model was trained only on vicocam's synthetic talking-head
world: asked to animate a photograph, or driven by a real camera or video, it
renders a distorted face, and nothing else would say why. `vicocam run` and
`vicocam serve` print the warning at start (`warn`); ``serve`` also hands the
same text to its page through `stages.webrtc.server.ServerConfig.notice`,
from where the page shows it and `vicocam client` prints it. The advice names
the public LIA checkpoint ``vox.pt``; nothing is downloaded.

Nothing heavy is imported at module level: the commands import this module
while ``vicocam --help`` must stay instant.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from networks.checkpoint import TrainingDomain

REAL_FACES_CHECKPOINT = "models/vox.pt"
"""Where the advice puts the LIA release file (any path works with ``--checkpoint``)."""

LIA_RELEASE = "github.com/wyhsirius/LIA"
"""Where the LIA authors publish ``vox.pt``, their model of real talking faces."""

EXAMPLE_AVATAR = "me.jpg"
"""The portrait the advice names when the user gave none of their own."""

EXAMPLE_DRIVER = "camera:0"
"""The driver the advice names when the user's driver is generated."""


def notice(command: Sequence[str]) -> str:
    """The warning and its advice, one line, ending with ``command`` to run instead."""
    return ("this model knows only vicocam's synthetic world, so real faces come out "
            "distorted. For real faces use the public LIA checkpoint vox.pt (the LIA authors' "
            f"release, {LIA_RELEASE}, file \"vox.pt\"), put it at {REAL_FACES_CHECKPOINT} "
            f"and run: {shlex.join(command)}")


def synthetic_only(domain: TrainingDomain | None) -> bool:
    """Whether the weights know only the synthetic world (random and unknown ones make
    no such claim: random weights announce themselves, unknown ones may be fine)."""
    from networks.checkpoint import TrainingDomain

    return domain is TrainingDomain.SYNTHETIC_WORLD


def is_real_avatar(spec: str) -> bool:
    """A picture file, as opposed to ``person:N`` (a held-out synthetic person)."""
    return spec.partition(":")[0] != "person"


def is_real_driver(spec: str) -> bool:
    """A camera, a video or a picture; ``person`` and ``pattern`` are generated."""
    from stages.endpoints import SourceKind, source_kind

    return source_kind(spec) is not SourceKind.GENERATED


def run_notice(domain: TrainingDomain | None, avatars: Sequence[str], driver: str) -> str | None:
    """The warning for ``vicocam run`` with these endpoints; ``None`` when it does not apply.

    The advised command keeps the user's own portraits and real driver.
    """
    real = [avatar for avatar in avatars if is_real_avatar(avatar)]
    real_driver = is_real_driver(driver)
    if not synthetic_only(domain) or not (real or real_driver):
        return None
    command = ["vicocam", "run", "--checkpoint", REAL_FACES_CHECKPOINT]
    for avatar in real or [EXAMPLE_AVATAR]:
        command += ["--avatar", avatar]
    return notice([*command, "--driver", driver if real_driver else EXAMPLE_DRIVER])


def serve_notice(domain: TrainingDomain | None, avatar: str) -> str | None:
    """The warning for ``vicocam serve`` (a browser's camera always films a real face);
    ``None`` when the model is not one of the synthetic world."""
    if not synthetic_only(domain):
        return None
    shown = avatar if is_real_avatar(avatar) else EXAMPLE_AVATAR
    return notice(["vicocam", "serve", "--checkpoint", REAL_FACES_CHECKPOINT, "--avatar", shown])


def warn(line: str | None) -> None:
    """Print ``line`` as a warning on stderr (nothing for ``None``)."""
    if line:
        print(f"vicocam: warning: {line}", file=sys.stderr)
