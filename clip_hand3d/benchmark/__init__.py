"""Speed and memory of the model variants on this machine (`clip-hand3d benchmark`, see `commands/benchmark.py`).

- `meters`: peak memory (CPU RSS or CUDA allocations) and the CPU load of other processes, as context managers.
- `measure`: inference and training measurements of random-weight models, parameter counts, `run_benchmarks`.
- `report`: the machine's description and the results as markdown tables (`docs/benchmarks.md`).
"""

from .measure import (
    PRECISIONS,
    count_parameters,
    load_variant_config,
    measure_inference,
    measure_training,
    random_weight_model,
    run_benchmarks,
)
from .meters import OtherProcessesCPU, PeakCudaMemory, PeakRSS, release_freed_heap
from .report import describe_machine, results_to_markdown

__all__ = [
    "PRECISIONS",
    "OtherProcessesCPU",
    "PeakCudaMemory",
    "PeakRSS",
    "count_parameters",
    "describe_machine",
    "load_variant_config",
    "measure_inference",
    "measure_training",
    "random_weight_model",
    "release_freed_heap",
    "results_to_markdown",
    "run_benchmarks",
]
