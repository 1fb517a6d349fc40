# The digit service: torch's CPU build, the shipped checkpoint, a non-root user.
# Build: docker compose build (or docker build .). On machines that reach no PyTorch index, run
# `make docker-prep` first: it puts the local torch CPU wheel in ./wheels, which the build uses.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch 2.13.0, CPU build: from ./wheels when a wheel is there, else from PyTorch's CPU index
RUN --mount=type=bind,source=wheels,target=/wheels \
    set -e; wheel=$(ls /wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1); \
    if [ -n "$wheel" ]; then pip install "$wheel"; \
    else pip install --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple "torch==2.13.0"; fi
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && python -c "import torch; assert torch.__version__.endswith('+cpu'), torch.__version__" \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
    && cd /opt/venv/lib/python3.11/site-packages \
    && rm -rf torch/include torch/share/cmake torch/bin/protoc* torch/bin/test_* torch/bin/*Test torch/test \
    && find sympy numpy networkx mpmath -type d -name tests -prune -exec rm -rf {} + \
    && rm -f cv2/data/*.xml \
    && python -m pip uninstall --yes --quiet pip
# Left out above: torch's headers, tests and C++ test programs, the test suites of sympy, numpy,
# networkx and mpmath, OpenCV's face-detection cascades, and pip; nothing in the service or
# training uses them. (OpenCV, which the
# image path needs, is the largest package after torch: docs/measured.md, "The container".)

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /checkpoints /feedback && chown app:app /checkpoints /feedback
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DIGITS_HOST=0.0.0.0 \
    DIGITS_PORT=8000 \
    DIGITS_WORKERS=2 \
    DIGITS_TORCH_THREADS=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=8388608 \
    MALLOC_TRIM_THRESHOLD_=33554432
WORKDIR /srv
COPY app/ app/
COPY model/ model/
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('DIGITS_PORT', '8000'), timeout=2)"]
# exec form: python is PID 1's child-free target of SIGTERM, and uvicorn drains on it
CMD ["python", "-m", "app"]
