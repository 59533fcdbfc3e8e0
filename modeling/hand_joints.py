"""The 21 hand joints (FreiHAND's order, the paper's names, the kinematic tree) and the size of the hand mesh.

Order: 0 wrist; 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 little, each from base to tip.
"""

FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")
FINGER_PART_NAMES = ("MCP", "PIP", "DIP", "fingertip")

JOINT_NAMES = ("wrist",) + tuple(f"{finger} {part}" for finger in FINGER_NAMES for part in FINGER_PART_NAMES)
NUM_JOINTS = len(JOINT_NAMES)

# Parent of each joint in the kinematic tree (-1 for the wrist, the root).
JOINT_PARENTS = (-1,) + tuple(
    0 if part == 0 else 1 + 4 * finger + part - 1 for finger in range(5) for part in range(4)
)

ROOT_JOINT = 0
# Vertices of the full hand mesh (MANO's count; the built-in template has as many).
NUM_VERTICES = 778
# The bone whose metric length FreiHAND calls the hand's "scale": middle MCP to middle PIP.
REFERENCE_BONE = (9, 10)
