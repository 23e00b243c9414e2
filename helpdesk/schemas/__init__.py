"""Marshmallow schemas: what the API reads (inputs) and writes (resources)."""
