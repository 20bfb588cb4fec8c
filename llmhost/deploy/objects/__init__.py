"""Builders of Kubernetes objects, one module per concern; each returns plain dicts."""
