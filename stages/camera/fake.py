"""A fake camera behind `DeviceOpener` that can be unplugged and plugged back.

It stands in for a real camera wherever one cannot be pulled out on demand:
the camera tests and the camera-loss benchmark (``vicocam bench camera-loss``).
`FakeWorld` is the camera as the world sees it (frames pushed by hand, or by
a `LiveFeed` at a steady rate); `FakeDevice` is what its opener returns, with
the calls of ``cv2.VideoCapture`` that `CameraSource` uses. Every frame
carries its index as a stamp (`stages.stamp`), so what comes out the far end
of a pipeline can be traced back to the frame the camera gave.
"""

from __future__ import annotations

import queue
import threading
import time

import cv2
import numpy as np
import numpy.typing as npt

from stages.camera.device import DeviceRequest
from stages.stamp import stamp

FAKE_SIZE = (160, 120)
"""The fake camera's default ``(width, height)``: small, so a run costs little CPU."""

_READ_WAIT_S = 0.05  # a read with no frame waits this long, like a driver's short timeout


class FakeWorld:
    """A camera that can be unplugged; frames are pushed by the caller.

    ``opened`` and ``requests`` record every open, so a caller can check
    how often (and for what) the source reopened the device.
    """

    def __init__(self, size: tuple[int, int] = FAKE_SIZE, fps: float = 30.0) -> None:
        self.size = size
        self.fps = fps
        self.frames: queue.Queue[npt.NDArray[np.uint8]] = queue.Queue()
        self.plugged = threading.Event()
        self.plugged.set()
        self.opened: list[FakeDevice] = []
        self.requests: list[DeviceRequest] = []

    def push(self, index: int) -> None:
        """Queue one BGR frame stamped with ``index``."""
        image = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        image[..., 0] = 200  # blue in BGR
        stamp(image, index)
        self.frames.put(image)

    def opener(self, request: DeviceRequest) -> FakeDevice:
        """A `DeviceOpener`: the device opens only while the camera is plugged."""
        self.requests.append(request)
        device = FakeDevice(self, opened=self.plugged.is_set())
        self.opened.append(device)
        return device


class FakeDevice:
    """The read/isOpened/release/get/set calls of ``cv2.VideoCapture``."""

    def __init__(self, world: FakeWorld, opened: bool) -> None:
        self.world = world
        self._opened = opened
        self.released = False
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return self._opened and not self.released and self.world.plugged.is_set()

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        if not self.isOpened():
            return False, None
        try:
            return True, self.world.frames.get(timeout=_READ_WAIT_S)
        except queue.Empty:
            return False, None

    def release(self) -> None:
        self.released = True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.world.fps if prop == cv2.CAP_PROP_FPS else 0.0


class LiveFeed:
    """Pushes stamped frames (0, 1, 2 ...) into a `FakeWorld` at its rate while plugged.

    A context manager: entering pushes frame 0 (the one ``CameraSource.open``
    reads) and starts the feed thread; leaving stops it. ``unplug()`` pulls
    the camera (frames stop, queued ones are lost, opening fails);
    ``replug()`` puts it back. Both return when they did it (monotonic ns).
    ``next_index`` is the stamp the next frame pushed will carry.
    """

    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.next_index = 0
        self._stop = threading.Event()
        # Unplugging and the feed's check-then-push exclude each other, so no
        # frame taken before the unplug lands in the queue after it.
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-camera-feed", daemon=True)

    def __enter__(self) -> LiveFeed:
        self.world.push(self._take_index())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def unplug(self) -> int:
        with self._lock:
            self.world.plugged.clear()
            while not self.world.frames.empty():
                self.world.frames.get_nowait()
            return time.monotonic_ns()

    def replug(self) -> int:
        self.world.plugged.set()
        return time.monotonic_ns()

    def _take_index(self) -> int:
        index, self.next_index = self.next_index, self.next_index + 1
        return index

    def _run(self) -> None:
        interval = 1.0 / self.world.fps
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += interval
            with self._lock:
                if self.world.plugged.is_set():
                    self.world.push(self._take_index())
