# One image for the operator and the Job pods' runtime.
#   operator:  python -m rap_operator
#   pods:      python -m analyzer_runtime analyze --run-id UID   (shard = $JOB_COMPLETION_INDEX)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY analyzer_runtime ./analyzer_runtime
COPY operator ./operator
COPY devtools ./devtools
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# Run as a non-root user; the runtime needs no privileges.
RUN groupadd --gid 10001 rap && useradd --create-home --uid 10001 --gid 10001 rap
COPY --from=build /install /usr/local
COPY crds /app/crds
WORKDIR /app
USER 10001:10001
ENV PYTHONUNBUFFERED=1 METRICS_PORT=9102
EXPOSE 9102
ENTRYPOINT ["python", "-m"]
CMD ["analyzer_runtime", "--help"]
