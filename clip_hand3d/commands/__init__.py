"""The `clip-hand3d` command line: one module per subcommand, each with `register(subparsers)` and `run(args)`."""
