"""The shipped configs, installed as charrnn.configs (see pyproject.toml)."""
