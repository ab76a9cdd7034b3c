"""The application layer: every ``vicocam`` command and all the wiring behind them.

Library packages (the `pipeline` runtime, `stages`, `networks`,
`trt_engines`, `training`) import only downward and never this package or
`benchmarks`; ``tests/test_layers.py`` checks it over the import graph.

* `pipeline.app.cli`: the entry point (``vicocam``, ``python -m pipeline.app``).
* `pipeline.app.commands`: one module per command.
* `pipeline.app.model_options`: the model options, declared once
  (``--checkpoint --config --backend --device --threads --precision --cache``).
* `pipeline.app.endpoint_options`, `pipeline.app.options`: the other shared
  options and value parsers.
* `pipeline.app.avatar_run`, `pipeline.app.serving`: the assembly of an
  avatar run and of the avatar service ``vicocam serve`` runs.

To add a command: write ``pipeline/app/commands/NAME.py`` with
``register(subparsers)`` (add a parser, its options from the shared helpers,
and ``set_defaults(handler=fn)``; ``fn(args) -> int`` builds typed configs and
calls library code, raising `pipeline.errors.UserError` for what the user
can fix), import nothing heavy at module level, and add ``NAME`` to
`pipeline.app.cli.COMMANDS`.
"""
