"""Honest measurements: phase timers that wait for the GPU, and true memory peaks.

- Time: ``PhaseTimer`` synchronizes CUDA before reading the clock at both ends of a phase, so
  asynchronous kernels are charged to the phase that launched them.
- Host memory: the peak resident set size (RSS) of the process. The kernel keeps a high-water
  mark (``VmHWM``) that catches every peak; a background sampler covers systems without it.
  The notebook sampled RSS once per batch, which misses peaks between samples.
- GPU memory: PyTorch's own peak counters (allocated by tensors, reserved by the caching allocator).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

MIB = 1024 * 1024
SAMPLE_INTERVAL_S = 0.01


def cuda_synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Wall-clock seconds per named phase, with the device synchronized at phase boundaries."""

    def __init__(self, device="cpu"):
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        cuda_synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            cuda_synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def kernel_peak_rss_bytes(pid: int | str = "self") -> int | None:
    """The kernel's high-water mark of the RSS of process ``pid``, this one by default (Linux
    ``VmHWM``), or None."""
    status = Path(f"/proc/{pid}/status")
    try:
        lines = status.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class PeakMemory:
    """Peak RSS of this process while the context is open (and before: the kernel's mark
    covers the process's whole life, which is what a one-job process is charged for)."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S):
        self.interval_s = interval_s
        self._process = psutil.Process()
        self._sampled_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled_peak = max(self._sampled_peak, self._process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self._sampled_peak = max(self._sampled_peak, self._process.memory_info().rss)

    @property
    def peak_rss_mb(self) -> float:
        return max(self._sampled_peak, kernel_peak_rss_bytes() or 0) / MIB


def reset_gpu_peaks(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peaks_mb(device) -> tuple[float, float]:
    """(peak allocated, peak reserved) MiB since the last reset; NaN off CUDA."""
    import torch

    if torch.device(device).type != "cuda":
        return (float("nan"), float("nan"))
    return (
        torch.cuda.max_memory_allocated(device) / MIB,
        torch.cuda.max_memory_reserved(device) / MIB,
    )
