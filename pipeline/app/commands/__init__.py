"""One module per ``vicocam`` command; `pipeline.app.cli.COMMANDS` lists them."""
