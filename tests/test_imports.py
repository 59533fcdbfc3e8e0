"""Inference needs no data-set code: `import clip_hand3d` loads neither `datasets` nor any loader."""

import subprocess
import sys


def test_import_clip_hand3d_loads_no_dataset_code():
    script = (
        "import sys, clip_hand3d; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('datasets', 'pyarrow') "
        "or name.startswith(('clip_hand3d.data', 'clip_hand3d.training'))))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
