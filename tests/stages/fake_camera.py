"""A fake camera behind `stages.camera.DeviceOpener`: it can be unplugged and plugged back.

`FakeWorld` is the camera as the world sees it (frames pushed by the test, or
by a `LiveFeed` at a steady rate); `FakeDevice` is what the opener returns,
with the calls of ``cv2.VideoCapture`` that `CameraSource` uses.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from stages.camera import DeviceRequest
from stages.stamp import stamp

W, H = 160, 120


class FakeWorld:
    """A camera that can be unplugged; frames are pushed by the test."""

    def __init__(self, size=(W, H), fps=30.0):
        self.size = size
        self.fps = fps
        self.frames: queue.Queue[np.ndarray] = queue.Queue()
        self.plugged = threading.Event()
        self.plugged.set()
        self.opened: list[FakeDevice] = []
        self.requests: list[DeviceRequest] = []

    def push(self, index: int) -> None:
        image = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        image[..., 0] = 200  # blue in BGR
        stamp(image, index)
        self.frames.put(image)

    def opener(self, request: DeviceRequest) -> FakeDevice:
        self.requests.append(request)
        device = FakeDevice(self, opened=self.plugged.is_set())
        self.opened.append(device)
        return device


class FakeDevice:
    """The read/isOpened/release/get/set calls of cv2.VideoCapture."""

    def __init__(self, world: FakeWorld, opened: bool):
        self.world = world
        self._opened = opened
        self.released = False
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802
        return self._opened and not self.released and self.world.plugged.is_set()

    def read(self):
        if not self.isOpened():
            return False, None
        try:
            return True, self.world.frames.get(timeout=0.05)
        except queue.Empty:
            return False, None

    def release(self) -> None:
        self.released = True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        import cv2

        return self.world.fps if prop == cv2.CAP_PROP_FPS else 0.0


class LiveFeed:
    """Pushes stamped frames (0, 1, 2 ...) into a `FakeWorld` at its rate while plugged.

    ``unplug()`` pulls the camera (frames stop, queued ones are lost, opening
    fails); ``replug()`` puts it back and returns the time it did (monotonic ns).
    """

    def __init__(self, world: FakeWorld):
        self.world = world
        self.next_index = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-camera-feed", daemon=True)

    def __enter__(self) -> LiveFeed:
        self.world.push(self._take_index())  # the frame CameraSource.open reads
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def unplug(self) -> int:
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
            if self.world.plugged.is_set():
                self.world.push(self._take_index())
