"""The CLIP-Hand3D network and its Hugging Face classes (installed as `clip_hand3d.modeling`).

This folder is copied flat into every saved checkpoint as remote code: it imports only torch, numpy,
transformers and its own files.
"""

from .configuration_clip_hand3d import CLIPHand3DConfig
from .hand_topology import HandTopology
from .modeling_clip_hand3d import CLIPHand3DModel, CLIPHand3DOutput, CLIPHand3DPreTrainedModel

__all__ = ["CLIPHand3DConfig", "CLIPHand3DModel", "CLIPHand3DOutput", "CLIPHand3DPreTrainedModel", "HandTopology"]
