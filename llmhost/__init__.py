"""llmhost: plan, serve, deploy and measure self-hosted open LLMs."""

__version__ = "0.1.0"
