"""`python -m llmhost`: the same as the `llmhost` command."""

from llmhost.cli import main

main()
