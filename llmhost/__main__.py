from llmhost.cli import app

app()
