"""The shipped corpora, installed as charrnn.corpora (see pyproject.toml and README.md here)."""
