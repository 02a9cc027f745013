# syntax=docker/dockerfile:1
# shoprank image: the same image runs the web tier (gunicorn), the migrations and the rerank workers.
#
#   docker build -t shoprank:latest .                                          # CPU torch (default)
#   docker build -t shoprank:latest-cuda --build-arg TORCH_FLAVOR=cuda \
#       --build-arg TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu128 .  # CUDA torch for GPU workers
#
# TORCH_FLAVOR picks the stage torch comes from: `torch-cpu` installs from PyTorch's CPU-only wheel index
# (about 200 MB instead of several GB of CUDA libraries), `torch-cuda` from a CUDA wheel index whose
# bundled CUDA runtime must suit the host's NVIDIA driver. BuildKit builds only the stage that is used.
ARG PYTHON_IMAGE=python:3.11-slim
ARG TORCH_FLAVOR=cpu

FROM ${PYTHON_IMAGE} AS python-venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip

# torch first and pinned, from the index for its flavour: anything else would let pip pick a build on its own.
FROM python-venv AS torch-cpu
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_CPU_INDEX_URL" "$TORCH_SPEC"

FROM python-venv AS torch-cuda
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "$TORCH_CUDA_INDEX_URL" "$TORCH_SPEC"

FROM torch-${TORCH_FLAVOR} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reranking ./reranking
COPY shoprank ./shoprank
COPY shopctl ./shopctl
COPY search ./search
COPY catalog ./catalog
COPY workers ./workers
COPY webapp ./webapp
COPY experiments ./experiments
# torch is already satisfied, so the project's range (torch>=2.4,<2.15) keeps the flavour installed above.
RUN pip install . && python -c "import torch, gunicorn, prometheus_client; print('torch', torch.__version__)"

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 shoprank \
 && mkdir -p /models /home/shoprank/.cache/huggingface /home/shoprank/index \
 && chown -R shoprank /home/shoprank/.cache /home/shoprank/index
COPY --from=build /opt/venv /opt/venv
# NVIDIA_DRIVER_CAPABILITIES is read by the NVIDIA container toolkit on GPU hosts; inert elsewhere.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/shoprank/.cache/huggingface \
    TOKENIZERS_PARALLELISM=false \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER shoprank
WORKDIR /home/shoprank
EXPOSE 8000 9101
CMD ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]
