# syntax=docker/dockerfile:1
# rerank-grpc server image.
#   docker build -t rerank-grpc:0.1.0 .                                   CPU, serves the bundled all-MiniLM-L6-v2
#   docker build -t rerank-grpc:0.1.0-cuda --build-arg TORCH_VARIANT=cu128 .                        CUDA build of torch
#   docker build -t rerank-grpc:0.1.0-msmarco --build-arg MODEL_NAME=ms-marco \
#       --build-arg MODEL_SOURCE=cross-encoder/ms-marco-MiniLM-L-6-v2 .    bake a hub model into the image
#   docker build -t rerank-grpc:0.1.0-openvino --build-arg EXTRAS=server,openvino .   adds --backend openvino
#   docker run -p 50051:50051 -v /models/bge:/models/bge -e RERANK_MODELS=bge=/models/bge rerank-grpc:0.1.0
#                                                                          or mount a model directory

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# cpu, or a CUDA variant of the PyTorch wheel index (cu126, cu128, ...).
ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.13.0
# Extras to install: server, plus openvino and/or onnx for rerank-server --backend openvino|onnx.
ARG EXTRAS=server
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY client ./client
COPY server ./server
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" "torch==${TORCH_VERSION}" \
    && /opt/venv/bin/pip install --no-cache-dir ".[${EXTRAS}]"

FROM build AS model
# A hub model to bake into the image's Hugging Face cache at build time ("bundled": nothing to fetch).
ARG MODEL_SOURCE=bundled
ENV HF_HOME=/opt/hf
RUN mkdir -p /opt/hf \
    && if [ "${MODEL_SOURCE}" != "bundled" ]; then /opt/venv/bin/hf download "${MODEL_SOURCE}"; fi

FROM ${PYTHON_IMAGE}
ARG MODEL_NAME=all-MiniLM-L6-v2
ARG MODEL_SOURCE=bundled
COPY --from=build /opt/venv /opt/venv
COPY --from=model /opt/hf /opt/hf
RUN useradd --create-home --uid 10001 --user-group rerank
USER 10001:10001
# OpenVINO (EXTRAS=...,openvino) sends usage telemetry unless its user opted out; a server should not.
RUN if [ -x /opt/venv/bin/opt_in_out ]; then /opt/venv/bin/opt_in_out --opt_out; fi
# Bind every interface inside the container; serve the baked (or bundled) model; never reach the hub
# at run time: a model comes from the image or a mounted volume.
ENV PATH=/opt/venv/bin:$PATH \
    HF_HOME=/opt/hf \
    HF_HUB_OFFLINE=1 \
    RERANK_HOST=0.0.0.0 \
    RERANK_PORT=50051 \
    RERANK_MODELS=${MODEL_NAME}=${MODEL_SOURCE}
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["rerank", "health", "--target", "127.0.0.1:50051", "--timeout", "4"]
ENTRYPOINT ["rerank-server"]
