"""Pydantic response models, one module per resource, so ``/api/openapi.json`` describes every
field the API answers with. Models allow no surprise: a reader that adds a field adds it here."""
