"""clip-hand3d: 3D hand pose and mesh estimation from one RGB image (CLIP-Hand3D), Hugging Face native."""

from transformers import AutoConfig, AutoModel

from .modeling import CLIPHand3DConfig, CLIPHand3DModel, CLIPHand3DOutput, HandTopology

# With the package installed, the Auto classes know the model without trust_remote_code.
AutoConfig.register(CLIPHand3DConfig.model_type, CLIPHand3DConfig, exist_ok=True)
AutoModel.register(CLIPHand3DConfig, CLIPHand3DModel, exist_ok=True)

from .image_processing import CLIPHand3DImageProcessor  # noqa: E402

# Registers transformers' pipeline("hand-mesh-estimation"); mediapipe is imported only when a detector is made.
from .pipeline import HandMeshPipeline  # noqa: E402
from .processing import CLIPHand3DProcessor  # noqa: E402
from .prompts import build_prompts  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CLIPHand3DConfig",
    "CLIPHand3DImageProcessor",
    "CLIPHand3DModel",
    "CLIPHand3DOutput",
    "CLIPHand3DProcessor",
    "HandMeshPipeline",
    "HandTopology",
    "build_prompts",
]
