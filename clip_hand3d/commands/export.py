"""`clip-hand3d export`: a trained model as an ONNX or OpenVINO graph for fast CPU inference, float32 or int8.

    clip-hand3d export --model outputs/clip-hand3d-tiny --format onnx --out exported/tiny
    clip-hand3d export --model outputs/clip-hand3d-r50 --format openvino --int8 --calibration synthetic \\
        --out exported/r50-int8

The folder holds the graph (pixel_values in; joints_uvd, vertices_uvd out; dynamic batch), the model's config,
topology and processor: `HandMeshPipeline.from_pretrained(folder, runtime="onnxruntime" | "openvino")` runs it.
The export is `clip_hand3d.export`'s (needs `pip install "clip-hand3d[export]"`).
"""

import argparse
import json
from dataclasses import asdict

from clip_hand3d.export.calibration import DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_SAMPLES
from clip_hand3d.export.folder import BACKENDS


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `export` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser(
        "export",
        help="export a model as an ONNX or OpenVINO graph, float32 or int8",
        description=(
            "Write the model's inference graph (image crops in, joints and mesh in uvd out, any batch size) with its "
            "processor, config and topology into --out, for the onnxruntime and openvino runtimes. --int8 quantises "
            "it statically (onnxruntime's quantisation for onnx, NNCF for openvino), calibrated on --calibration; "
            "the soft-argmax heads and the mesh anchors stay in float."
        ),
    )
    parser.add_argument("--model", required=True, help="the model's folder (train.py's output) or Hub repo id")
    parser.add_argument("--format", required=True, choices=BACKENDS, help="onnx (model.onnx) or openvino (.xml/.bin)")
    parser.add_argument("--out", required=True, help="the folder to write (new, or empty)")
    parser.add_argument("--int8", action="store_true", help="static int8 post-training quantisation")
    parser.add_argument(
        "--calibration",
        default=None,
        metavar="SPEC",
        help=(
            f"int8 calibration data (default {DEFAULT_CALIBRATION}): synthetic, synthetic:N, freihand:PATH, rhd:PATH, "
            "stb:PATH (joined by '+'), or random[:N] (speed tests only)"
        ),
    )
    parser.add_argument(
        "--calibration-samples",
        type=int,
        default=DEFAULT_CALIBRATION_SAMPLES,
        metavar="N",
        help=f"calibration crops (default {DEFAULT_CALIBRATION_SAMPLES})",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> dict:
    """The `export` command: export, print what was written; bad arguments exit with a one-line error."""
    from clip_hand3d.export import export_pretrained

    if args.calibration is not None and not args.int8:
        raise SystemExit("clip-hand3d export: error: --calibration is for --int8 exports")
    try:
        config = export_pretrained(
            args.model,
            args.out,
            backend=args.format,
            int8=args.int8,
            calibration_spec=args.calibration or DEFAULT_CALIBRATION,
            calibration_samples=args.calibration_samples,
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        raise SystemExit(f"clip-hand3d export: error: {error}") from None
    summary = asdict(config)
    print(json.dumps({"out": args.out, **summary}, indent=2))
    return summary
