"""Parameter counts, FLOPs and CPU time per frame of a configuration.

FLOPs follow the convention of the method notes (spec A.8): counted by
``torch.utils.flop_counter.FlopCounterMode``, FLOPs = 2 x MACs, only
convolutions (the FIR blurs included) and matrix products; element-wise ops
and ``grid_sample`` are free. The per-frame figure is what runs for every
frame once the avatar is cached: driver encode + fc (``MotionGraph``) and
one render (``GenerateGraph``). Counting runs on the meta device, so even the
256 px models cost no compute.

``python -m networks.flops [--time] [names...]`` prints the table quoted in
``networks/config.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from networks.config import ModelConfig, get_config, list_configs
from networks.generator import Generator
from networks.graphs import GenerateGraph, MotionGraph


def _resolve(config: ModelConfig | str) -> ModelConfig:
    return get_config(config) if isinstance(config, str) else config


def param_count(config: ModelConfig | str) -> int:
    """Generator parameters (buffers excluded), unused checkpoint-only ones included."""
    with torch.device("meta"):
        generator = Generator(_resolve(config))
    return sum(p.numel() for p in generator.parameters())


def _count(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def flops_breakdown(config: ModelConfig | str) -> dict[str, int]:
    """FLOPs of one frame with a cached avatar, batch 1: ``encode``, ``fc``, ``generate``."""
    cfg = _resolve(config)
    with torch.device("meta"):
        generator = Generator(cfg)
        motion, render = MotionGraph(generator), GenerateGraph(generator)
        driver = torch.empty(1, 3, cfg.size, cfg.size)
        wa = torch.empty(1, cfg.style_dim)
        inputs = [spec.example(1) for spec in render.input_specs]
    encode = _count(lambda: generator.enc.net_app(driver))
    fc = _count(lambda: generator.enc.fc(wa))
    generate = _count(lambda: render(*inputs))
    total = _count(lambda: motion(driver))
    if total != encode + fc:  # the graph must be exactly encode + fc
        raise RuntimeError(f"MotionGraph counted {total}, expected {encode + fc}")
    return {"encode": encode, "fc": fc, "generate": generate}


def flops_per_frame(config: ModelConfig | str) -> int:
    """Driver encode + fc + generation with a cached avatar, batch 1."""
    return sum(flops_breakdown(config).values())


def cpu_ms_per_frame(
    config: ModelConfig | str, threads: int = 2, repeats: int = 20, warmup: int = 3
) -> dict[str, float]:
    """Wall time of one cached-avatar frame on CPU (random weights): min / median in ms.

    A measurement helper for choosing configs, not a benchmark harness:
    run it on an otherwise idle machine.
    """
    cfg = _resolve(config)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = Generator(cfg).eval()
        motion, render = MotionGraph(generator), GenerateGraph(generator)
        driver = torch.rand(1, 3, cfg.size, cfg.size) * 2 - 1
        latent, _alpha, *feats = render.example_inputs(1)
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                render(latent, motion(driver), *feats)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return {"min_ms": min(times), "median_ms": statistics.median(times)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list_configs())
    parser.add_argument("--time", action="store_true", help="also time CPU ms/frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    for name in args.names:
        flops = flops_breakdown(name)
        line = (
            f"{name:14s} params {param_count(name):>12,d}  GFLOPs/frame "
            f"{sum(flops.values()) / 1e9:7.3f} (encode {flops['encode'] / 1e9:.3f},"
            f" generate {flops['generate'] / 1e9:.3f})"
        )
        if args.time:
            ms = cpu_ms_per_frame(name, args.threads, args.repeats)
            line += f"  CPU {ms['min_ms']:.1f} ms min / {ms['median_ms']:.1f} ms median"
        print(line)


if __name__ == "__main__":
    main()
