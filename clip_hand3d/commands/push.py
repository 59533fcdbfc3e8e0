"""`clip-hand3d push` and `clip-hand3d push-space`: a trained model, and the demo Space, to the Hugging Face Hub.

    clip-hand3d push --model outputs/clip-hand3d-tiny --repo-id you/clip-hand3d-tiny [--private] [--revision REV]
    clip-hand3d push-space --space-id you/clip-hand3d-demo --model-id you/clip-hand3d-tiny

`push` uploads the model folder `train.py` wrote (model, processor, card, metrics and plots; no checkpoints), as
`train.py --push_to_hub` does. `push-space` uploads `spaces_demo/` as a Gradio Space whose README lists the model
and whose CLIP_HAND3D_MODEL variable names it, with the package's wheel for its requirements. Both use the token
of `hf auth login` or HF_TOKEN unless `--token` is given (`clip_hand3d.hub`).
"""

import argparse

from clip_hand3d.hub import HubError, push_output_dir, push_space


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `push` and `push-space` commands to the `clip-hand3d` command line."""
    parser = subparsers.add_parser("push", help="Upload a trained model folder to the Hugging Face Hub.")
    parser.add_argument("--model", required=True, help="The model folder train.py wrote.")
    parser.add_argument("--repo-id", required=True, help="The Hub model repo, e.g. you/clip-hand3d-tiny.")
    parser.add_argument("--private", action="store_true", help="Create the repo private.")
    parser.add_argument("--revision", default=None, help="The branch to push to (created if needed).")
    parser.add_argument("--token", default=None, help="A Hub token (default: hf auth login's, or HF_TOKEN).")
    parser.set_defaults(func=run)
    space = subparsers.add_parser("push-space", help="Upload the demo Space, pointed at a model on the Hub.")
    space.add_argument("--space-id", required=True, help="The Space repo, e.g. you/clip-hand3d-demo.")
    space.add_argument("--model-id", required=True, help="The model the Space loads (a Hub repo id).")
    space.add_argument("--folder", default="spaces_demo", help="The Space's files (app.py, README.md, ...).")
    space.add_argument("--wheel", default=None, help="The clip-hand3d wheel to ship (default: built from here).")
    space.add_argument("--private", action="store_true", help="Create the Space private.")
    space.add_argument("--token", default=None, help="A Hub token (default: hf auth login's, or HF_TOKEN).")
    space.set_defaults(func=run_space)


def run(args: argparse.Namespace) -> str:
    """`clip-hand3d push`: upload the model folder; prints and returns the commit's URL."""
    try:
        url = push_output_dir(args.model, args.repo_id, token=args.token, private=args.private, revision=args.revision)
    except (ValueError, HubError) as error:
        raise SystemExit(f"clip-hand3d push: error: {error}") from None
    print(f"pushed {args.model} to {url}")
    return url


def run_space(args: argparse.Namespace) -> str:
    """`clip-hand3d push-space`: upload the Space folder; prints and returns the commit's URL."""
    try:
        url = push_space(args.folder, args.space_id, args.model_id, token=args.token, private=args.private,
                         wheel=args.wheel)  # fmt: skip
    except (ValueError, HubError) as error:
        raise SystemExit(f"clip-hand3d push-space: error: {error}") from None
    print(f"pushed the Space {args.folder} (model {args.model_id}) to {url}")
    return url
