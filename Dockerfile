# syntax=docker/dockerfile:1
# shoprank image: the same image runs the web tier and the rerank workers.
# CPU torch by default; for GPU workers build with --build-arg TORCH_INDEX_URL=<PyTorch CUDA wheel index>.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first and pinned: anything else would let pip pick a multi-GB build on its own.
RUN pip install --upgrade pip \
 && pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reranking ./reranking
COPY shoprank ./shoprank
COPY workers ./workers
COPY webapp ./webapp
COPY experiments ./experiments
RUN pip install .

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 shoprank \
 && mkdir -p /models /home/shoprank/.cache/huggingface \
 && chown -R shoprank /home/shoprank/.cache
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/shoprank/.cache/huggingface \
    TOKENIZERS_PARALLELISM=false
USER shoprank
WORKDIR /home/shoprank
CMD ["shoprank", "--help"]
