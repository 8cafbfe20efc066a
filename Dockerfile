# refund-advisor: `refund-advisor run` (Telegram long polling) as a non-root user, SQLite in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    REFUND_ADVISOR_DB=/data/refund-advisor.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY dialogs ./dialogs
COPY messages ./messages
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 advisor \
    && mkdir -p /data \
    && chown advisor:advisor /data

USER advisor
VOLUME ["/data"]
CMD ["refund-advisor", "run"]
