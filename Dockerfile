# The rater's image: `docker build -t rater .` (docker-compose.yml builds it too).
# Dependencies are installed at build time from the pinned constraints.txt; the runtime
# stage holds the installed package only, runs as an unprivileged user, and starts the
# rater in exec form, so the rater is PID 1 and receives SIGTERM itself (it finishes and
# commits the current batch, then leaves the group: give it `stop_grace_period`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY rater ./rater
COPY sinks ./sinks
RUN pip wheel --no-cache-dir -c constraints.txt --wheel-dir /wheels .

FROM python:3.11-slim
# Shared libraries and the font of WeasyPrint (invoice PDFs), a dependency of the package.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 libfontconfig1 \
        libglib2.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --create-home --home-dir /app rater \
    && mkdir -p /data && chown rater /data
COPY config/plans.yaml config/rates.csv config/tenants.csv /app/config/
USER rater
WORKDIR /app
ENV RATER_TARIFF_DIR=/app/config \
    RATER_OUTPUT__DATASET_DIR=/data/out \
    RATER_OUTPUT__DUCKDB_PATH=/data/out/rater.duckdb \
    RATER_METRICS_PORT=9108 \
    PYTHONUNBUFFERED=1
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]
ENTRYPOINT ["rater"]
CMD ["run"]
