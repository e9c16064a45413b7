"""oraclectl's subcommands, one module per thing an operator manages."""
