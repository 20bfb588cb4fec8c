"""The data plane: llmhost's OpenAI-compatible gateway in front of engine replicas."""
