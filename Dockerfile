# syntax=docker/dockerfile:1
#
# One image for all three services and the migrator:
#   docker run IMAGE services.scanner | services.executor | services.budget | shared.db.migrate
# (ENTRYPOINT is `python -m`; the Kubernetes manifests pass the module as `args`).
#
# No secret is ever part of the image or its build: every key, token and database URL comes from
# the environment at run time (Kubernetes Secrets, see deploy/README.md). The build context is an
# allow-list (.dockerignore), so local state such as .stack/operator.token cannot slip in.
#
# Pin the base image by digest in CI, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> -t auto-invest-oracle .
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/oracle

# Dependencies first, in their own layer: rebuilt only when the lock changes. The lock is the
# whole closure, so --no-deps: nothing unpinned can come in. Wheels only: no compiler at build.
COPY deploy/docker/requirements.lock /tmp/requirements.lock
RUN /opt/oracle/bin/pip install --no-deps --only-binary=:all: -r /tmp/requirements.lock

# The project itself (not editable). Only the packages the services need are in the context:
# no tests, no simulators, no local stack.
WORKDIR /src
COPY pyproject.toml ./
COPY protos ./protos
COPY shared ./shared
COPY services ./services
COPY oraclectl ./oraclectl
# --no-build-isolation builds with the pinned setuptools from the lock instead of fetching the
# newest one. `pip check` fails the build when the lock no longer satisfies pyproject.toml.
RUN /opt/oracle/bin/pip install --no-deps --no-build-isolation . \
 && /opt/oracle/bin/pip check \
 && /opt/oracle/bin/python -c "from shared.db.migrate import discover; assert discover(), 'no migrations packaged'" \
 && /opt/oracle/bin/python -m compileall -q /opt/oracle/lib

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it without a user database.
ARG UID=10001
ARG GID=10001
RUN groupadd --system --gid "${GID}" oracle \
 && useradd --system --uid "${UID}" --gid "${GID}" --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin oracle

COPY --from=build /opt/oracle /opt/oracle

# PYTHONSAFEPATH: `python -m` does not put the working directory on sys.path, so only the
# installed code can be imported. PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at
# run time; the bytecode was compiled above.
ENV PATH=/opt/oracle/bin:${PATH} \
    PYTHONSAFEPATH=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1

LABEL org.opencontainers.image.title="auto-invest-oracle" \
      org.opencontainers.image.description="scanner, executor and budget gRPC services and the migrator"

WORKDIR /opt/oracle
USER ${UID}:${GID}

# gRPC ports: scanner 50051, executor 50052, budget 50053.
EXPOSE 50051 50052 50053

# No CMD on purpose: every use names the module it runs, nothing starts by default.
ENTRYPOINT ["python", "-m"]
