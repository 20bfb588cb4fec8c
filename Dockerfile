# The gateway image `llmhost render` refers to (ghcr.io/llmhost/llmhost:<version>); build and
# push your own and pass it with --gateway-image:
#   docker build -t registry.example.com/llmhost:0.1.0 . && docker push registry.example.com/llmhost:0.1.0
# It runs only the gateway: engines run in their own images (vLLM, llama.cpp, Ollama).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY llmhost ./llmhost
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --uid 10001 --create-home llmhost \
    && rm -rf /src
USER 10001
WORKDIR /home/llmhost
EXPOSE 8000
CMD ["llmhost", "up", "--config", "/etc/llmhost/llmhost.yaml"]
