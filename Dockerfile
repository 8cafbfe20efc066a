# refund-advisor: `refund-advisor run` (Telegram long polling) by default, or `refund-advisor webhook`;
# SQLite in the /data volume unless REFUND_ADVISOR_DB names a database server. See README.md.

# The package and its dependencies are installed into a virtual environment here; only that
# environment goes into the final image, so pip's caches and anything a build needed stay behind.
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/refund-advisor
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY dialogs ./dialogs
COPY messages ./messages
RUN /opt/refund-advisor/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/refund-advisor/bin:$PATH \
    REFUND_ADVISOR_DB=/data/refund-advisor.db \
    TELEGRAM_WEBHOOK_LISTEN=0.0.0.0 \
    TELEGRAM_WEBHOOK_PORT=8080
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin advisor \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=builder /opt/refund-advisor /opt/refund-advisor
WORKDIR /data
USER 10001:10001
VOLUME ["/data"]
# Webhook mode only (`refund-advisor webhook`); polling mode opens no port.
EXPOSE 8080
# Both modes: the database answers (webhook mode also serves GET /healthz on its port).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["refund-advisor", "health"]
CMD ["refund-advisor", "run"]
