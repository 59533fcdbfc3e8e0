"""The named variants in `hub_configs/` (open_clip's model_configs, scanned): `list_variants()` and lookup."""

from importlib import resources
from pathlib import Path

from .image_processing import CLIPHand3DImageProcessor
from .modeling import CLIPHand3DConfig
from .processing import CLIPHand3DProcessor
from .tokenization import load_tokenizer


def variants_dir() -> Path:
    """The folder holding one sub-folder per variant."""
    return Path(str(resources.files("clip_hand3d.hub_configs")))


def list_variants() -> list[str]:
    """Names of the built-in variants, e.g. ["clip-hand3d-r18", "clip-hand3d-r50", "clip-hand3d-tiny"]."""
    return sorted(path.name for path in variants_dir().iterdir() if (path / "config.json").is_file())


def resolve_variant(name_or_path: str) -> str:
    """A variant name -> its folder; an existing folder (or a Hub id) is returned unchanged.

    Raises ValueError naming the known variants when `name_or_path` looks like a variant name but is none.
    """
    if Path(name_or_path).is_dir():
        return name_or_path
    folder = variants_dir() / name_or_path
    if (folder / "config.json").is_file():
        return str(folder)
    if name_or_path.startswith("clip-hand3d-") or "/" not in name_or_path:
        raise ValueError(f"unknown variant {name_or_path!r}: known variants are {list_variants()}, or give a folder")
    return name_or_path


def processor_for_config(config: CLIPHand3DConfig, tokenizer_name_or_path: str | None = None) -> CLIPHand3DProcessor:
    """A `CLIPHand3DProcessor` whose crops and uvd space match `config`.

    `tokenizer_name_or_path`: None for the local word-level tokenizer (no network), else a tokenizer by name or
    folder, e.g. the CLIP tokenizer that goes with a pretrained CLIP text tower.
    """
    image_processor = CLIPHand3DImageProcessor(
        image_size=config.image_size,
        heatmap_size=config.heatmap_size,
        depth_size=config.depth_size,
        depth_range=config.depth_range,
    )
    return CLIPHand3DProcessor(
        image_processor=image_processor,
        tokenizer=load_tokenizer(tokenizer_name_or_path),
        num_prompt_joints=config.num_prompt_joints,
        max_text_length=config.max_text_length,
    )


def load_processor(
    name_or_path: str, config: CLIPHand3DConfig, tokenizer_name_or_path: str | None = None
) -> CLIPHand3DProcessor:
    """The processor saved with a variant or a trained model (`processor_config.json`), which training crops with
    exactly as inference will.

    Raises ValueError when its uvd space or prompts differ from `config`'s. `tokenizer_name_or_path` replaces the
    saved tokenizer, e.g. by the CLIP tokenizer that goes with a pretrained CLIP text tower.
    """
    folder = resolve_variant(name_or_path)
    if Path(folder).is_dir() and not (Path(folder) / "processor_config.json").is_file():
        raise ValueError(
            f"{folder} has no processor_config.json: save the processor with the model "
            f"(processor.save_pretrained(folder), as train.py does)"
        )
    processor = CLIPHand3DProcessor.from_pretrained(folder)
    image_processor = processor.image_processor
    pairs = [(name, getattr(image_processor, name)) for name in ("image_size", "heatmap_size", "depth_size")]
    pairs += [("depth_range", image_processor.depth_range)]
    pairs += [(name, getattr(processor, name)) for name in ("num_prompt_joints", "max_text_length")]
    for name, value in pairs:
        if value != getattr(config, name):
            raise ValueError(
                f"the processor of {folder} has {name}={value}, its model config {name}={getattr(config, name)}"
            )
    if tokenizer_name_or_path is not None:
        processor.tokenizer = load_tokenizer(tokenizer_name_or_path)
    return processor
