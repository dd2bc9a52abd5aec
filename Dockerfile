# deathstar: a multi-stage image built from the very wheel `nox -s build` made and tested.
#
# Inputs come only from dist/ and requirements/ (see .dockerignore), and the build needs no
# network: `nox -s image` runs it with `--network none`. Valid for BuildKit and the classic
# builder alike (no RUN --mount).
#
# Layers are ordered by how often they change. The runtime stage receives the dependencies
# and the project as separate layers, so a source change ships a few kilobytes, not the venv;
# the project layer is staged on the host, so a source change runs no build container either.

ARG BASE_IMAGE=python:3.11-slim-bookworm
# The stage the runtime stage starts from. `nox -s image` passes an image of that stage, built
# once per dependency set (harness/image/runtime_base.py): an exporter that rewrites timestamps
# leaves the layers of the image a build starts FROM alone, instead of recompressing the venv
# on every build. Either way the image is the same; `nox -s repro` builds it in one go.
ARG RUNTIME_BASE=runtime-base

# --- deps: a virtualenv holding only the locked runtime dependencies --------------------------
FROM ${BASE_IMAGE} AS deps
ARG SOURCE_DATE_EPOCH=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
# pip lives in a throwaway tool venv and installs into /opt/venv from outside (--python), so
# the runtime venv never contains pip or setuptools.
RUN python3 -m venv /opt/tools \
    && python3 -m venv --without-pip /opt/venv
COPY requirements/runtime.txt /src/requirements/runtime.txt
COPY dist/wheelhouse/ /src/wheelhouse/
# Bytecode by hash, not file time (rewrite-timestamp changes the times), and unchecked: an
# image's files never change, and a checked .pyc makes every start read and hash the source of
# each module it imports.
RUN /opt/tools/bin/pip --python /opt/venv/bin/python install --no-compile \
        --no-index --find-links /src/wheelhouse --require-hashes --only-binary :all: \
        --requirement /src/requirements/runtime.txt \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv/lib

# --- runtime-base: the user and the venv, everything below the project -------------------------
FROM ${BASE_IMAGE} AS runtime-base
# useradd writes the day into /etc/shadow: from SOURCE_DATE_EPOCH, not from the build's clock.
ARG SOURCE_DATE_EPOCH=0
# A fixed uid/gid so volume ownership is predictable across hosts and rebuilds.
RUN groupadd --system --gid 10001 deathstar \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin deathstar \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=deps /opt/venv /opt/venv

# --- runtime ----------------------------------------------------------------------------------
FROM ${RUNTIME_BASE} AS runtime
# The project, laid out at its image paths on the host by `nox -s build` (harness/stage.py), so a
# source change runs no build container: first what such a change leaves alone (the dist-info,
# whose METADATA carries the README, and the entry-point script), then the package and RECORD,
# the layer every source change ships. No bytecode: it would double that layer.
COPY dist/staging/metadata/ /
COPY dist/staging/project/ /
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEATHSTAR_HOST=0.0.0.0 \
    DEATHSTAR_PORT=8080 \
    DEATHSTAR_DATABASE=/data/deathstar.db
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# --start-interval: probed every second while starting, so it turns healthy in about a second.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --start-interval=1s --retries=3 \
    CMD ["deathstar", "healthcheck"]
ENTRYPOINT ["deathstar", "api"]

# Build metadata last: it changes on every commit and must not invalidate the layers above.
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/tea-n-tech/deathstar
ARG BASE_IMAGE
# The base by its name and digest (BASE_IMAGE may name it by a local tag of that digest).
ARG BASE_NAME=${BASE_IMAGE}
ARG BASE_DIGEST=""
ENV DEATHSTAR_REVISION=${REVISION} \
    DEATHSTAR_CREATED=${CREATED}
LABEL org.opencontainers.image.title="deathstar" \
      org.opencontainers.image.description="A small HTTP API for tracking targets." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_NAME}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"
