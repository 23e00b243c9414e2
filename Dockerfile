# The production image: a non-editable install, run as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY helpdesk ./helpdesk
COPY workers ./workers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HELPDESK_MIGRATIONS_DIR=/app/migrations \
    HELPDESK_INSTANCE_DIR=/app/instance \
    HELPDESK_DATA_DIR=/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /app helpdesk \
 && mkdir -p /app/instance /data && chown -R helpdesk /app /data
COPY --chown=helpdesk migrations /app/migrations
WORKDIR /app
USER helpdesk
EXPOSE 5000
# Liveness; the compose file adds readiness (/readyz: database, migrations, Redis).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=2)" || exit 1
CMD ["helpdesk", "web", "--host", "0.0.0.0", "--port", "5000"]
