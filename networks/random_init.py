"""Random generator weights in a trained generator's flow regime.

Training starts from LIA's initialisation (StyleGAN2's: unit-normal weights
scaled at run time), and so does `Generator`. That initialisation is a poor
stand-in for a trained model wherever a check needs *some* weights but no
checkpoint (engine parity, export, self-checks, a run with no model): its
``ToFlow`` heads predict flows that move every pixel by 0.3-0.6 grid units
(a sixth to a third of the picture, in random directions, at every scale),
where a trained generator moves them by about 0.08 (the bundled model on
picture-like inputs). Such flows scramble the encoder features at each of
the five or six scales, and each scramble amplifies the rounding of the last:
one float32 rounding of the inputs moves a default-initialised ``lia-256``'s
image by 2.4e-3, so no two correct backends can agree to 1e-4 on it.

`random_generator` keeps the default initialisation and multiplies each
``ToFlow`` head's convolution weight by `FLOW_GAIN`, which brings the mean
flow magnitude down to the trained range (0.04-0.10 across the registered
configurations). Nothing else changes: same layers, same other weights, same
state-dict layout, and a checkpoint loaded over it replaces every tensor.
"""

from __future__ import annotations

import torch

from networks.config import ModelConfig
from networks.generator import Generator
from networks.layers import ToFlow

FLOW_GAIN = 0.1
"""Scale of the ``ToFlow`` convolution weights in `random_generator`."""


def scale_flow_heads(generator: Generator, gain: float) -> Generator:
    """Multiply every ``ToFlow`` convolution weight of ``generator`` by ``gain``, in place."""
    if not gain > 0:
        raise ValueError(f"the flow gain must be positive, got {gain}")
    with torch.no_grad():
        for head in generator.dec.to_flows:
            if not isinstance(head, ToFlow):  # a ModuleList is untyped
                raise TypeError(f"expected ToFlow heads, found {type(head).__name__}")
            head.conv.weight.mul_(gain)
    return generator


def random_generator(config: ModelConfig, seed: int = 0, flow_gain: float = FLOW_GAIN) -> Generator:
    """Seeded default-initialised weights with the ``ToFlow`` heads scaled by ``flow_gain``.

    ``flow_gain=1`` gives `Generator`'s own initialisation (what training
    starts from). The global torch RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(config)
    return scale_flow_heads(generator, flow_gain).eval()
