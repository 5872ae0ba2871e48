"""One module per ``nas-mnist`` subcommand: ``add_arguments(parser)`` and ``run(args)``."""
