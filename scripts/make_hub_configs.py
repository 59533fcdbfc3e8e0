"""Write the named variants into hub_configs/: config.json, preprocessor_config.json and the local tokenizer.

    python scripts/make_hub_configs.py

The variants:
- clip-hand3d-r50: the paper's model (ResNet-50 encoder, CLIP ViT-B/32 text tower), pretrained encoders loaded by
  name at the start of training.
- clip-hand3d-r18: the same head on ResNet-18, faster.
- clip-hand3d-tiny: a few MB, 128-pixel crops, random text tower: tests and CPU training.
"""

from pathlib import Path

from clip_hand3d.modeling import CLIPHand3DConfig
from clip_hand3d.tokenization import LOCAL_VOCAB_SIZE
from clip_hand3d.variants import processor_for_config

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "hub_configs"

TINY_TEXT = {
    "vocab_size": LOCAL_VOCAB_SIZE,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "projection_dim": 32,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}

VARIANTS = {
    "clip-hand3d-r50": {},
    "clip-hand3d-r18": {
        "backbone_config": {
            "layer_type": "basic",
            "embedding_size": 64,
            "hidden_sizes": [64, 128, 256, 512],
            "depths": [2, 2, 2, 2],
        },
        "backbone": "microsoft/resnet-18",
    },
    "clip-hand3d-tiny": {
        "backbone_config": {
            "layer_type": "basic",
            "embedding_size": 32,
            "hidden_sizes": [32, 64, 128, 256],
            "depths": [1, 1, 1, 1],
        },
        "use_pretrained_backbone": False,
        "text_config": TINY_TEXT,
        "use_pretrained_text_model": False,
        "image_size": 128,
        "heatmap_size": 32,
        "depth_size": 32,
        "joint_deconv_channels": [64, 64, 32],
        "joint_plane_size": 8,
        "text_transformer_heads": 2,
        "projection_dim": 64,
        "mesh_widths": [64, 32, 32, 16],
        "mesh_attention_heads": [4, 2, 2, 2],
    },
}


def main() -> None:
    for name, overrides in VARIANTS.items():
        config = CLIPHand3DConfig(**overrides)
        folder = OUTPUT_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        # Plain JSON, without the auto_map and code copy that save_pretrained adds for remote code.
        config.to_json_file(folder / "config.json")
        processor_for_config(config).save_pretrained(folder)
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
