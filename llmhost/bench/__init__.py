"""Measure: load tests of any OpenAI-compatible endpoint, reported the way serving engineers
report them (vLLM's conventions), with the cost per million tokens on given hardware."""
