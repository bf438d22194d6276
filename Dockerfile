# syntax=docker/dockerfile:1
# catalog-refresher in a container: `docker build -t catalog-refresher:0.1.0 .`
#
# Untried as an image: the machines this project is built on have no container
# engine and no registry for base images, so no image has been built from this file.
# What tests/e2e/test_container.py checks instead: that the files copied below build
# the same wheel as `python -m build`; that the wheel, installed into a fresh virtual
# environment at /opt/catalog-refresher as below, serves with this file's ENV,
# WORKDIR, ENTRYPOINT and CMD; and that the HEALTHCHECK command passes against it.
#
#   docker run -d --name catalog-refresher -p 8000:8000 --stop-timeout 45 \
#       -v catalog-data:/var/lib/catalog-refresher \
#       -v /srv/catalog/appsettings.json:/etc/catalog-refresher/appsettings.json:ro \
#       catalog-refresher:0.1.0
#   docker run --rm -p 8000:8000 catalog-refresher:0.1.0 demo   # simulated systems, no config
#
# - The configuration is mounted at /etc/catalog-refresher/appsettings.json (any
#   other path: pass `run --config PATH`); secrets as `file:` values of mounted files.
# - Api:Host and Api:Port are set below as environment variables, which win over the
#   file: the API listens on 0.0.0.0:8000 in the container (publish it with -p). Set
#   -e Api__Port=N to move it; the HEALTHCHECK follows that variable.
# - The SQLite store (the default sqlite:///catalog.db, relative to WORKDIR) is on the
#   volume /var/lib/catalog-refresher; on PostgreSQL (Store:Url) nothing is written there.
# - Stopping: SIGTERM, then up to ShutdownGracePeriod (00:00:30) for the runs in flight.
#   Docker's default stop timeout is 10 s: give `--stop-timeout 45` (or
#   `docker stop -t 45`) so that a run in flight can commit before the SIGKILL.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir "build>=1.2"
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim-bookworm
# The service's own account (no login, no home); the state folder is the only place it writes.
RUN groupadd --system --gid 10001 catalog-refresher \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin catalog-refresher \
    && mkdir -p /var/lib/catalog-refresher /etc/catalog-refresher \
    && chown catalog-refresher:catalog-refresher /var/lib/catalog-refresher \
    && chmod 0700 /var/lib/catalog-refresher
COPY --from=build /dist/ /tmp/dist/
RUN python -m venv /opt/catalog-refresher \
    && /opt/catalog-refresher/bin/pip install --no-cache-dir /tmp/dist/*.whl \
    && rm -rf /tmp/dist
ENV PATH=/opt/catalog-refresher/bin:$PATH
ENV PYTHONDONTWRITEBYTECODE=1
ENV Api__Host=0.0.0.0
ENV Api__Port=8000
WORKDIR /var/lib/catalog-refresher
VOLUME /var/lib/catalog-refresher
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
# Liveness only (the process serves): a failing source is no reason to restart it.
# http.client, not urllib: an HTTP(S)_PROXY variable must not route the check elsewhere.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import http.client, os; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('Api__Port', '8000')), timeout=4); c.request('GET', '/health/live'); raise SystemExit(c.getresponse().status != 200)"]
ENTRYPOINT ["catalog-refresher"]
CMD ["run", "--config", "/etc/catalog-refresher/appsettings.json"]
