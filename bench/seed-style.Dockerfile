# The seed: the Dockerfile of the Docker tutorial this project grew from, adapted only as far
# as an offline build requires, kept so that `nox -s bench` can compare our Dockerfile with
# it. Deliberately naive: do not copy it. Every source change rebuilds the wheel and then
# reinstalls all dependencies into a new layer of the final image.
#
# Adaptations, none of which changes the layer structure:
# - the build needs no network (`docker build --network none`): the build tool comes from
#   dist/build-tools/ (a poetry-core wheel the bench downloads) and the dependencies from the
#   locked wheelhouse that `nox -s build` fills (dist/wheelhouse/);
# - the base image has no system pip, so each stage makes a venv; the runtime venv is created
#   in its own layer before the wheel arrives, standing for the pip a python:3.11 image ships;
# - the service binds 0.0.0.0, so a published port reaches it.

ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS builder

WORKDIR /app

# The build tool (the tutorial: `pip install poetry`).
COPY dist/build-tools/ /wheels/build-tools/
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-index --find-links /wheels/build-tools poetry-core

# Dependencies first, so that a source change does not reinstall them here
# (the tutorial's `task install`).
COPY pyproject.toml README.md LICENSE ./
COPY requirements/runtime.txt requirements/runtime.txt
COPY dist/wheelhouse/ /wheels/runtime/
RUN /opt/build/bin/pip install --no-index --find-links /wheels/runtime \
        --requirement requirements/runtime.txt

# Now the source code, and the wheel (the tutorial's `task build`).
COPY deathstar deathstar
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir dist .

FROM ${BASE_IMAGE}

WORKDIR /app

# The tutorial installs the wheel's dependencies from the network; offline they come from
# the same wheelhouse.
COPY dist/wheelhouse/ /wheels/runtime/
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Copy the wheel from the builder and install it with all its dependencies, as the tutorial does
# (its pip cache and bare glob included: the bench measures that build, not a better one).
COPY --from=builder /app/dist/*.whl .
# hadolint ignore=DL3042,SC2035
RUN pip install --no-index --find-links /wheels/runtime *.whl

ENV DEATHSTAR_HOST=0.0.0.0
ENTRYPOINT ["deathstar", "api"]
