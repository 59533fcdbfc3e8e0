"""Topology files: a `HandTopology` as one safetensors file, and a topology built from MANO's `MANO_RIGHT.pkl`.

MANO's licence forbids redistribution: a topology built from MANO (and every file derived from it) stays on the
user's machine; never commit or upload it. `write_mano_format_pickle` exists so that the reader is tested on the
same file format with the package's own hand, never with MANO data.
"""

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from clip_hand3d.modeling.hand_topology import HandTopology

TOPOLOGY_FORMAT = "clip-hand3d-topology"
MANO_KEYS = ("v_template", "f", "J_regressor", "weights", "kintree_table")
MANO_NUM_JOINTS = 16
# MANO vertices at the tips of the thumb, index, middle, ring and little fingers.
MANO_FINGERTIP_VERTEX_IDS = (745, 317, 444, 556, 673)
# MANO's joints (wrist, index 1-3, middle 1-3, little 1-3, ring 1-3, thumb 1-3) followed by the fingertips
# (16 thumb, 17 index, 18 middle, 19 ring, 20 little): FreiHAND joint i is MANO-with-tips joint MANO_TO_FREIHAND[i].
MANO_TO_FREIHAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
# MANO's kinematic tree: parents (the root's is 2**32 - 1, as in the official files) over joint ids.
MANO_KINTREE_TABLE = np.array(
    [[2**32 - 1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], list(range(MANO_NUM_JOINTS))], dtype=np.int64
)


def save_topology(topology: HandTopology, path: str | Path) -> None:
    """Write `topology` to one safetensors file; the level sizes go into its metadata."""
    tensors = {name: tensor.contiguous() for name, tensor in topology.to_state_dict().items()}
    metadata = {"format": TOPOLOGY_FORMAT, "level_sizes": ",".join(str(size) for size in topology.level_sizes)}
    save_file(tensors, str(path), metadata=metadata)


def load_topology(path: str | Path) -> HandTopology:
    """Read a file written by `save_topology`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a safetensors file, not a topology (the message names the missing key), or a
            topology of the older format with `adjacency_{k}` tensors (rebuild it with `clip-hand3d build-topology`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"topology file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except SafetensorError as error:
        raise ValueError(f"{path} is not a safetensors file ({error})") from error
    if "level_sizes" not in metadata:
        raise ValueError(f"{path} is not a clip-hand3d topology: its metadata has no 'level_sizes'")
    level_sizes = tuple(int(size) for size in metadata["level_sizes"].split(","))
    required = ["faces", "joint_regressor"]
    required += [f"template_vertices_{level}" for level in range(len(level_sizes))]
    required += [f"upsample_{level}" for level in range(len(level_sizes) - 1)]
    for name in required:
        if name not in tensors:
            raise ValueError(f"{path} is not a clip-hand3d topology: it has no tensor {name!r}")
    _check_no_adjacency(tensors, path)
    try:
        topology = HandTopology.from_state_dict(tensors)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    if topology.level_sizes != level_sizes:
        raise ValueError(f"{path}: metadata says level sizes {level_sizes}, the tensors {topology.level_sizes}")
    return topology


def _check_no_adjacency(tensors: dict, path: Path) -> None:
    """Refuse a topology file of the older format, which also held per-level adjacency lists `adjacency_{k}`."""
    old_names = sorted(name for name in tensors if name.startswith("adjacency_"))
    if old_names:
        raise ValueError(
            f"{path} is a topology file of an older format: its {', '.join(old_names)} entries are adjacency "
            "lists that topologies no longer hold. Rebuild it from your MANO_RIGHT.pkl with "
            f"`clip-hand3d build-topology --mano MANO_RIGHT.pkl --out {path}` (a topology of another mesh: "
            "`save_topology(HandTopology.from_mesh(...), path)` again)"
        )


class _ChumpyObject:
    """What a chumpy object becomes when read here: its pickled state (a plain `Ch` keeps its array in 'x')."""

    state: dict | None = None

    def __setstate__(self, state: dict) -> None:
        self.state = state


_SAFE_BUILTINS = {"set", "frozenset", "object", "slice", "complex"}


class _ManoUnpickler(pickle.Unpickler):
    """Unpickler for MANO's Python 2 pickle without chumpy: chumpy classes become `_ChumpyObject`, sparse
    matrices load from their public scipy name, and any other class is refused."""

    def find_class(self, module: str, name: str) -> type:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyObject
        if module.startswith("scipy.sparse") and hasattr(scipy.sparse, name):
            return getattr(scipy.sparse, name)
        is_builtin = module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS
        is_bytes_decoder = (module, name) == ("_codecs", "encode")  # how Python 3 writes bytes at protocol 2
        is_numpy = module == "numpy" or module.startswith(("numpy.core", "numpy._core"))
        if is_numpy or module in ("copyreg", "copy_reg") or is_builtin or is_bytes_decoder:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in a MANO model file")


def _mano_array(value: object, key: str, path: Path) -> np.ndarray:
    """A MANO value as a dense numpy array (chumpy arrays unwrapped, sparse matrices densified)."""
    if isinstance(value, _ChumpyObject):
        if not isinstance(value.state, dict) or "x" not in value.state:
            raise ValueError(f"{path}: {key!r} is a chumpy expression, not an array; it cannot be read without chumpy")
        value = value.state["x"]
    if scipy.sparse.issparse(value):
        value = value.toarray()
    return np.asarray(value)


def read_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Read the arrays this package needs from the official `MANO_RIGHT.pkl`, without chumpy.

    Returns:
        `v_template` (778, 3) float64 metres, `f` (1538, 3) int64, `J_regressor` (16, 778) float64 (dense),
        `weights` (778, 16) float64, `kintree_table` (2, 16) int64.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file {path} does not exist")
    try:
        with path.open("rb") as file:
            content = _ManoUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a readable MANO model pickle ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not a MANO model: it holds a {type(content).__name__}, not a dict")
    arrays = {}
    for key in MANO_KEYS:
        if key not in content:
            raise ValueError(f"{path} is not a MANO model: key {key!r} is missing")
        arrays[key] = _mano_array(content[key], key, path)
    num_vertices = arrays["v_template"].shape[0]
    expected_shapes = {
        "v_template": (num_vertices, 3),
        "f": (arrays["f"].shape[0], 3),
        "J_regressor": (MANO_NUM_JOINTS, num_vertices),
        "weights": (num_vertices, MANO_NUM_JOINTS),
        "kintree_table": (2, MANO_NUM_JOINTS),
    }
    for key, shape in expected_shapes.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{path}: {key!r} has shape {arrays[key].shape}, expected {shape}")
    for key in ("v_template", "J_regressor", "weights"):
        arrays[key] = arrays[key].astype(np.float64)
    for key in ("f", "kintree_table"):
        arrays[key] = arrays[key].astype(np.int64)
    return arrays


def topology_from_mano(
    path: str | Path, fingertip_vertex_ids: tuple[int, ...] = MANO_FINGERTIP_VERTEX_IDS
) -> HandTopology:
    """A `HandTopology` of MANO's mesh (778 vertices, 1538 faces) from `MANO_RIGHT.pkl`.

    The joint regressor (21, 778) is MANO's 16 joint rows plus one-hot rows at `fingertip_vertex_ids` (thumb,
    index, middle, ring, little), reordered to FreiHAND's order with `MANO_TO_FREIHAND`.
    """
    mano = read_mano_pickle(path)
    num_vertices = mano["v_template"].shape[0]
    tips = np.asarray(fingertip_vertex_ids)
    if tips.shape != (5,) or tips.min() < 0 or tips.max() >= num_vertices:
        raise ValueError(f"fingertip_vertex_ids must be 5 vertex ids below {num_vertices}, got {fingertip_vertex_ids}")
    tip_rows = np.zeros((5, num_vertices))
    tip_rows[np.arange(5), tips] = 1.0
    regressor = np.concatenate([mano["J_regressor"], tip_rows])[list(MANO_TO_FREIHAND)]
    return HandTopology.from_mesh(mano["v_template"], mano["f"], regressor)


class _ChumpyArray:
    """Pickled as `chumpy.ch.Ch` (inside `_chumpy_module`), with the state a plain chumpy `Ch` pickles."""

    __module__ = "chumpy.ch"
    __qualname__ = "Ch"

    def __init__(self, value: np.ndarray):
        self.x = np.asarray(value, dtype=np.float64)
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


@contextlib.contextmanager
def _chumpy_module() -> Iterator[None]:
    """Expose `_ChumpyArray` as `chumpy.ch.Ch` in sys.modules while pickling, then restore sys.modules."""
    names = ("chumpy", "chumpy.ch")
    saved = {name: sys.modules[name] for name in names if name in sys.modules}
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    package.ch, module.Ch = module, _ChumpyArray
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def write_mano_format_pickle(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    J_regressor_16: np.ndarray,
    weights: np.ndarray,
    kintree_table: np.ndarray = MANO_KINTREE_TABLE,
) -> None:
    """Write a pickle in the format of `MANO_RIGHT.pkl` (protocol 2; `v_template`, `weights` and `J` as
    `chumpy.ch.Ch` objects, `J_regressor` as a scipy CSC matrix, `f` uint32), for tests of the reader.

    Args:
        vertices: (V, 3) template, metres. faces: (F, 3). J_regressor_16: (16, V). weights: (V, 16).
        kintree_table: (2, 16) parents over joint ids.
    """
    content = {
        "v_template": _ChumpyArray(vertices),
        "f": np.asarray(faces, dtype=np.uint32),
        "J_regressor": scipy.sparse.csc_matrix(np.asarray(J_regressor_16, dtype=np.float64)),
        "weights": _ChumpyArray(weights),
        "kintree_table": np.asarray(kintree_table),
        "J": _ChumpyArray(np.asarray(J_regressor_16) @ np.asarray(vertices)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    with _chumpy_module(), Path(path).open("wb") as file:
        pickle.dump(content, file, protocol=2)
