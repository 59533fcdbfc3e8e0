"""The README opens with the two commands that must work on a fresh machine; CI runs the second one."""

import re
import shlex
from pathlib import Path

from clip_hand3d.training.arguments import parse_args

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def fenced_commands() -> list[str]:
    """The command lines (not comments) of the README's first two bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)[:2]
    return [next(line for line in block.splitlines() if line and not line.startswith("#")) for block in blocks]


def test_readme_starts_with_the_main_command_then_the_test_command():
    main_command, test_command = fenced_commands()
    assert main_command.startswith("pip install torch==2.13.0 && pip install -e . && accelerate launch")
    assert (
        test_command == 'pip install torch==2.13.0 && pip install -e ".[test]" && ruff check . && python -m pytest -q'
    )
    assert README.index(main_command) < README.index(test_command) < README.index("## ")


def test_ci_runs_the_readme_test_command():
    ci_script = (REPO / ".ci" / "run").read_text()
    assert "sed -n '/^# Tests (what CI runs)/{n;p;q}' README.md" in ci_script
    line_after_marker = README.split("# Tests (what CI runs).\n", 1)[1].splitlines()[0]
    assert line_after_marker == fenced_commands()[1]


def test_main_command_arguments_parse():
    main_command = fenced_commands()[0]
    train_arguments = shlex.split(main_command.split("train.py", 1)[1])
    args = parse_args(train_arguments)
    assert args.config.endswith("clip-hand3d-tiny") and args.dataset.startswith("synthetic")
    # `accelerate launch --cpu` alone sets OMP_NUM_THREADS=1; one process gets every core.
    launch_arguments = shlex.split(main_command.split("accelerate launch", 1)[1].split("train.py", 1)[0])
    assert launch_arguments == ["--cpu", "--num_processes", "1"]
