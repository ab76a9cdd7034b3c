"""`TorchEngine`: the PyTorch reference backend and the test double."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from trt_engines.backends import BackendName
from trt_engines.engine import EngineBase, TensorSpec, validate_feeds


class TorchEngine(EngineBase):
    """Runs an ``nn.Module`` whose ``forward`` takes the inputs in spec order.

    The module is put in ``eval()`` mode and moved to ``device`` (given by the
    caller: nothing here picks a GPU). Feeds on another device are moved to it,
    which is fine for a reference engine and keeps parity code simple. The
    forward may return one tensor, a tuple/list in output-spec order, or a dict
    keyed by output names.

    Args:
        allow_tf32: ``False`` (default) disables TF32 for convolutions and
            matmuls during `run` on CUDA, so the reference is true FP32 and
            comparable with a TensorRT engine built without TF32. The torch
            flags are process-wide, so they are restored after each call.
    """

    backend: str = BackendName.TORCH
    shareable: bool = True

    def __init__(
        self,
        module: nn.Module,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        *,
        device: torch.device | str,
        name: str = "torch",
        allow_tf32: bool = False,
    ) -> None:
        super().__init__(name, inputs, outputs, device)
        self.module = module.to(self.device).eval()
        self.allow_tf32 = allow_tf32

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_open()
        validate_feeds(self.inputs, feeds)
        args = [feeds[s.name].to(self.device) for s in self.inputs]
        with torch.inference_mode(), self._precision():
            result = self.module(*args)
        return self._name_outputs(result)

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        if self.allow_tf32 or self.device.type != "cuda":
            yield
            return
        matmul = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul

    def _name_outputs(self, result: object) -> dict[str, torch.Tensor]:
        names = [s.name for s in self.outputs]
        if isinstance(result, torch.Tensor):
            result = (result,)
        if isinstance(result, Mapping):
            named = {n: result[n] for n in names if n in result}
        elif isinstance(result, (tuple, list)) and len(result) == len(names):
            named = dict(zip(names, result, strict=True))
        else:
            raise RuntimeError(
                f"{self.name}: forward returned {type(result).__name__}; expected "
                f"{len(names)} tensor(s) named {names}"
            )
        self._check_outputs(named)
        return named

    def _check_outputs(self, named: Mapping[str, torch.Tensor]) -> None:
        for spec in self.outputs:
            out = named.get(spec.name)
            if out is None or not spec.matches_shape(out.shape) or out.dtype != spec.dtype:
                got = "nothing" if out is None else f"{tuple(out.shape)} {out.dtype}"
                raise RuntimeError(
                    f"{self.name}: output {spec.name!r} should be {spec.describe()}, got {got}"
                )


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, then restore the previous count.

    A process-wide torch setting, so commands set it around their work rather
    than engines per call. On a busy 2-core machine one thread is often much
    faster than two: the OpenMP barriers of a 2-thread pool wait on a core
    another process holds.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
