# One image for all four vramfit commands: vramfit-agent, vramfit-extender, vramfit-admission,
# vramfit-plan.
# Build stage: compile wheels (including the generated gRPC stubs) with the build tools.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY setup.py* ./
COPY placement ./placement
COPY documents ./documents
COPY serving ./serving
COPY extender ./extender
COPY nodeagent ./nodeagent
COPY planner ./planner
COPY simulator ./simulator
COPY controlplane ./controlplane
COPY admission ./admission
RUN python -m venv /opt/vramfit \
    && /opt/vramfit/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/vramfit/bin/pip install --no-cache-dir .

# Final stage: the virtualenv only; no compilers, no pip cache, a non-root user.
FROM python:3.11-slim-bookworm
COPY --from=build /opt/vramfit /opt/vramfit
RUN useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin vramfit
ENV PATH=/opt/vramfit/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT []
CMD ["vramfit-plan", "--help"]
