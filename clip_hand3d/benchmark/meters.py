"""Meters for the benchmark: peak memory (CPU resident set size or CUDA allocations) and other processes' CPU load.

Each meter is a context manager that measures what happens between its entry and its exit.
"""

import ctypes
import gc
import threading
import time

import psutil
import torch

MIB = 2**20


class PeakRSS:
    """Context manager: peak resident memory of this process above its level at entry (`peak_bytes`).

    A background thread reads the RSS every `interval_s` seconds. At entry, freed heap pages are handed back to the
    operating system (glibc's `malloc_trim`) so that the baseline is the memory the process really holds, not
    pages that earlier work freed and that the measured work would reuse unseen.
    """

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._baseline = 0
        self._highest = 0

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._highest = max(self._highest, self._rss())

    def __enter__(self) -> "PeakRSS":
        release_freed_heap()
        self._baseline = self._highest = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self._highest, self._rss()) - self._baseline


class PeakCudaMemory:
    """Context manager: peak CUDA memory allocated by torch above the amount allocated at entry (`peak_bytes`)."""

    def __init__(self):
        self.peak_bytes = 0
        self._baseline = 0

    def __enter__(self) -> "PeakCudaMemory":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self._baseline = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc_info) -> None:
        torch.cuda.synchronize()
        self.peak_bytes = torch.cuda.max_memory_allocated() - self._baseline


class OtherProcessesCPU:
    """Context manager: how many cores, on average, the rest of the machine kept busy while inside (`cores`).

    The machine's busy CPU time (user, nice, system, interrupts, and time stolen by the hypervisor) minus this
    process's own, over the wall time: 0 on a quiet machine, about 1 when another process keeps one core busy.
    """

    def __init__(self):
        self.cores = 0.0
        self._process = psutil.Process()
        self._start = (0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()
        busy_fields = ("user", "nice", "system", "irq", "softirq", "steal")
        busy = sum(getattr(machine, field, 0.0) for field in busy_fields)
        own = self._process.cpu_times()
        return busy, own.user + own.system, time.perf_counter()

    def __enter__(self) -> "OtherProcessesCPU":
        self._start = self._now()
        return self

    def __exit__(self, *exc_info) -> None:
        busy_end, own_end, wall_end = self._now()
        busy_start, own_start, wall_start = self._start
        self.cores = max(0.0, ((busy_end - busy_start) - (own_end - own_start)) / (wall_end - wall_start))


def release_freed_heap() -> None:
    """Collect garbage and return freed heap pages to the OS where the C library is glibc (no-op elsewhere)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


def peak_memory_meter(device: str) -> PeakRSS | PeakCudaMemory:
    """The peak-memory context manager for `device` ("cpu" or "cuda")."""
    return PeakCudaMemory() if device == "cuda" else PeakRSS()
