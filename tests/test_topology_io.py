import pickle
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from clip_hand3d.modeling.hand_template import build_hand_template
from clip_hand3d.modeling.hand_topology import HandTopology
from clip_hand3d.topology_io import (
    MANO_TO_FREIHAND,
    load_topology,
    read_mano_pickle,
    save_topology,
    topology_from_mano,
    write_mano_format_pickle,
)


@pytest.fixture(scope="module")
def topology() -> HandTopology:
    return HandTopology.builtin()


@pytest.fixture
def no_chumpy(monkeypatch):
    """Make `import chumpy` fail, as on a machine without it."""
    monkeypatch.setitem(sys.modules, "chumpy", None)
    monkeypatch.setitem(sys.modules, "chumpy.ch", None)


def builtin_as_mano_arrays() -> dict[str, np.ndarray]:
    """The built-in hand in MANO's layout: 16 joint rows in MANO's order (wrist, index, middle, little, ring,
    thumb), i.e. MANO-with-tips row m is FreiHAND row i where MANO_TO_FREIHAND[i] == m."""
    template = build_hand_template()
    freihand_row_of_mano_row = np.argsort(MANO_TO_FREIHAND)
    return {
        "vertices": template.vertices,
        "faces": template.faces,
        "J_regressor_16": template.joint_regressor[freihand_row_of_mano_row[:16]],
        "weights": template.skinning_weights,
    }


def test_save_load_round_trip_is_exact(topology, tmp_path):
    path = tmp_path / "topology.safetensors"
    save_topology(topology, path)
    loaded = load_topology(path)
    assert loaded.level_sizes == topology.level_sizes
    for name, value in topology.to_state_dict().items():
        assert torch.equal(loaded.to_state_dict()[name], value), name


def test_load_rejects_files_that_are_not_topologies(topology, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors does not exist"):
        load_topology(tmp_path / "missing.safetensors")
    text_file = tmp_path / "notes.safetensors"
    text_file.write_text("not tensors at all")
    with pytest.raises(ValueError, match="notes.safetensors is not a safetensors file"):
        load_topology(text_file)
    weights_file = tmp_path / "weights.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(weights_file))
    with pytest.raises(ValueError, match="weights.safetensors is not a clip-hand3d topology: its metadata has no"):
        load_topology(weights_file)
    state = topology.to_state_dict()
    del state["upsample_2"]
    partial_file = tmp_path / "partial.safetensors"
    save_file(state, str(partial_file), metadata={"level_sizes": "21,98,389,778"})
    with pytest.raises(
        ValueError, match="partial.safetensors is not a clip-hand3d topology: it has no tensor 'upsample_2'"
    ):
        load_topology(partial_file)


def test_load_names_the_older_format_with_adjacency_lists_and_how_to_rebuild(topology, tmp_path):
    state = topology.to_state_dict()
    state.update({f"adjacency_{level}": torch.zeros(0, 2, dtype=torch.int64) for level in range(4)})
    old_file = tmp_path / "old_topology.safetensors"
    save_file(state, str(old_file), metadata={"format": "clip-hand3d-topology", "level_sizes": "21,98,389,778"})
    with pytest.raises(ValueError, match="old_topology.safetensors is a topology file of an older format") as error:
        load_topology(old_file)
    message = str(error.value)
    assert "adjacency_0, adjacency_1, adjacency_2, adjacency_3 entries" in message
    assert "clip-hand3d build-topology --mano MANO_RIGHT.pkl --out" in message


def test_mano_format_pickle_round_trip_without_chumpy(tmp_path, no_chumpy):
    arrays = builtin_as_mano_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_format_pickle(path, arrays["vertices"], arrays["faces"], arrays["J_regressor_16"], arrays["weights"])
    assert sys.modules["chumpy"] is None and sys.modules["chumpy.ch"] is None  # restored after writing
    content = path.read_bytes()
    assert content[:2] == b"\x80\x02" and b"cchumpy.ch\nCh\n" in content and b"scipy.sparse" in content
    with pytest.raises(ImportError):
        import chumpy  # noqa: F401
    mano = read_mano_pickle(path)
    assert set(mano) == {"v_template", "f", "J_regressor", "weights", "kintree_table"}
    assert np.array_equal(mano["v_template"], arrays["vertices"])
    assert np.array_equal(mano["f"], arrays["faces"]) and mano["f"].dtype == np.int64
    assert np.array_equal(mano["J_regressor"], arrays["J_regressor_16"])
    assert np.array_equal(mano["weights"], arrays["weights"])
    assert mano["kintree_table"][0, 1:].tolist() == [0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


def test_reads_the_class_paths_of_python_2_era_files(tmp_path, no_chumpy):
    arrays = builtin_as_mano_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_format_pickle(path, arrays["vertices"], arrays["faces"], arrays["J_regressor_16"], arrays["weights"])
    # Protocol 2 names classes as "module\nname\n" text: rename the modules to those of numpy 1 and old scipy.
    content = path.read_bytes()
    content = content.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    content = content.replace(b"cscipy.sparse._csc\n", b"cscipy.sparse.csc\n")
    assert b"cnumpy.core.multiarray\n_reconstruct" in content and b"cscipy.sparse.csc\ncsc_matrix" in content
    path.write_bytes(content)
    mano = read_mano_pickle(path)
    assert np.array_equal(mano["v_template"], arrays["vertices"])
    assert np.array_equal(mano["J_regressor"], arrays["J_regressor_16"])


def test_topology_from_mano_format_rebuilds_the_builtin_topology(tmp_path, no_chumpy):
    arrays = builtin_as_mano_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_format_pickle(path, arrays["vertices"], arrays["faces"], arrays["J_regressor_16"], arrays["weights"])
    template = build_hand_template()
    rebuilt = topology_from_mano(path, fingertip_vertex_ids=tuple(template.fingertip_vertex_ids.tolist()))
    builtin = HandTopology.builtin()
    assert rebuilt.level_sizes == builtin.level_sizes and rebuilt.faces.shape == (1552, 3)
    assert torch.equal(rebuilt.joint_regressor, builtin.joint_regressor)
    assert torch.equal(rebuilt.upsample[2], builtin.upsample[2])


def test_mano_joints_are_reordered_to_freihand(tmp_path):
    # MANO joint m is the one-hot row at vertex 100 + m; the default fingertips are vertices 745, 317, 444, 556, 673.
    vertices = np.random.default_rng(0).normal(size=(778, 3))
    faces = build_hand_template().faces
    regressor_16 = np.zeros((16, 778))
    regressor_16[np.arange(16), 100 + np.arange(16)] = 1.0
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_format_pickle(path, vertices, faces, regressor_16, np.full((778, 16), 1 / 16))
    topology = topology_from_mano(path)
    # wrist; thumb = MANO 13-15 + tip; index = MANO 1-3 + tip; middle = 4-6; ring = 10-12; little = 7-9.
    expected_vertices = [100, 113, 114, 115, 745, 101, 102, 103, 317, 104, 105, 106, 444]
    expected_vertices += [110, 111, 112, 556, 107, 108, 109, 673]
    expected = torch.zeros(21, 778)
    expected[torch.arange(21), torch.tensor(expected_vertices)] = 1.0
    assert torch.equal(topology.joint_regressor, expected)
    assert torch.allclose(
        topology.template_vertices[0], torch.tensor(vertices[expected_vertices], dtype=torch.float32)
    )


def test_read_mano_pickle_names_the_missing_key_and_file(tmp_path):
    arrays = builtin_as_mano_arrays()
    path = tmp_path / "broken.pkl"
    with path.open("wb") as file:
        pickle.dump({"v_template": arrays["vertices"], "f": arrays["faces"], "kintree_table": np.zeros((2, 16))}, file)
    with pytest.raises(ValueError, match="broken.pkl is not a MANO model: key 'J_regressor' is missing"):
        read_mano_pickle(path)
    path.write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(ValueError, match="broken.pkl is not a readable MANO model pickle .*class __builtin__.print"):
        read_mano_pickle(path)
    with pytest.raises(FileNotFoundError, match="absent.pkl does not exist"):
        read_mano_pickle(tmp_path / "absent.pkl")
