"""The benchmark's markdown report of known results."""

from clip_hand3d.benchmark.report import results_to_markdown

TINY = "clip-hand3d-tiny"


def test_markdown_tables_of_known_results():
    machine = {
        "cpu": "Test CPU",
        "cores": 2,
        "memory_gib": 16.0,
        "torch": "2.0",
        "threads": 2,
        "python": "3.11.0",
        "platform": "Linux",
        "device": "cpu",
        "gpu": None,
    }
    inference_row = {
        "variant": TINY,
        "image_size": 128,
        "batch_size": 16,
        "precision": "fp32",
        "latency_ms_median": 250.0,
        "latency_ms_p90": 262.54,
        "backbone_latency_ms_median": 200.0,
        "backbone_latency_ms_p90": 210.0,
        "full_to_backbone_ratio": 1.25,
        "images_per_second": 64.0,
        "peak_memory_mib": 99.6,
        "other_processes_cpu": 0.5,
    }
    training_row = {
        "variant": TINY,
        "image_size": 128,
        "batch_size": 32,
        "precision": "bf16",
        "step_ms_median": 1999.6,
        "step_ms_p90": 2100.0,
        "images_per_second": 16.003,
        "peak_memory_mib": 512.0,
        "final_loss": 12.3456,
        "other_processes_cpu": 1.234,
    }
    parameters = {"total": 3_500_000, "trainable": 2_000_000, "backbone": 1_250_000, "text_model": 1_500_000}
    results = {
        "command": "clip-hand3d benchmark --variants clip-hand3d-tiny",
        "machine": machine,
        "inference": [inference_row],
        "training": [training_row],
        "parameters": {TINY: parameters},
    }
    lines = results_to_markdown(results).splitlines()
    assert lines[0] == "# clip-hand3d benchmark"
    assert "clip-hand3d benchmark --variants clip-hand3d-tiny" in lines
    assert "| CPU | Test CPU |" in lines and "| memory | 16 GiB |" in lines and "| threads | 2 |" in lines
    assert not any(line.startswith("| GPU") for line in lines)
    assert f"| {TINY} | 128 | 16 | fp32 | 250.0 | 262.5 | 200.0 | 210.0 | 1.25 | 64.0 | 100 | 0.50 |" in lines
    assert f"| {TINY} | 128 | 32 | bf16 | 2000 | 2100 | 16.0 | 512 | 12.346 | 1.23 |" in lines
    # Millions: total, trainable, backbone, text tower, inference model (total without the text tower).
    assert f"| {TINY} | 3.50 | 2.00 | 1.25 | 1.50 | 2.00 |" in lines
    assert results_to_markdown({**results, "training": []}).count("## Training") == 0
