"""The `clip-hand3d` command: every subcommand is there."""

from clip_hand3d.commands import build_parser


def test_every_subcommand_is_registered():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    expected = [
        "benchmark",
        "build-topology",
        "evaluate",
        "export",
        "make-synthetic",
        "mine-pairs",
        "push",
        "push-space",
    ]
    assert sorted(subcommands) == [*expected, "video"]
