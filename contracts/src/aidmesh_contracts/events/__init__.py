"""Event payload models, one module per bounded context."""
