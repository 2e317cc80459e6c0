"""Tasks of the reference app."""
