"""Click commands for gradient diagnostics (gradflow) and pictures (plot)."""

COMMANDS: list = []
