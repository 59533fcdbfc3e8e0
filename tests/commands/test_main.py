"""The `clip-hand3d` command: every subcommand is there."""

from clip_hand3d.commands import build_parser


def test_every_subcommand_is_registered():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert sorted(subcommands) == ["benchmark", "build-topology", "evaluate", "export", "make-synthetic", "video"]
