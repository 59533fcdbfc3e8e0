"""The benchmark's meters: peak resident memory and the CPU kept busy by other processes."""

import subprocess
import sys
import time

import torch

from clip_hand3d.benchmark.meters import OtherProcessesCPU, PeakRSS


def test_peak_rss_sees_a_buffer_held_inside():
    with PeakRSS() as memory:
        buffer = torch.ones(64 * 2**20, dtype=torch.uint8)
        time.sleep(0.2)  # many sampling intervals
        del buffer
    assert memory.peak_bytes >= 60 * 2**20


def test_other_processes_cpu_sees_a_busy_child_process():
    busy_loop = "import time\nend = time.time() + 0.5\nwhile time.time() < end:\n    pass"
    with OtherProcessesCPU() as others:
        subprocess.run([sys.executable, "-c", busy_loop], check=True)
    # About one core on a quiet machine; more when other processes run too.
    assert others.cores >= 0.5
