"""Engines: adapters for each serving engine, the embedded model, and the local supervisor."""
