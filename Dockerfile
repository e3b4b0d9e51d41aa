# syntax=docker/dockerfile:1
# rerank-grpc server image (CPU). Build:  docker build -t rerank-grpc .
# Run:  docker run -p 50051:50051 rerank-grpc            (serves the bundled all-MiniLM-L6-v2)
#       docker run -p 50051:50051 -v /models/mine:/models/mine rerank-grpc --model mine=/models/mine

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY client ./client
COPY server ./server
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ".[server]"

FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 rerank
USER rerank
ENV PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    RERANK_HOST=0.0.0.0 \
    RERANK_PORT=50051
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["rerank", "health", "--target", "127.0.0.1:50051", "--timeout", "4"]
ENTRYPOINT ["rerank-server"]
CMD ["--model", "all-MiniLM-L6-v2"]
