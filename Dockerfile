# The leadroute image: one image for the worker, beat and web processes (docs/compose/compose.yaml).
#   docker build -t leadroute .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 leadroute
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY connectors ./connectors
COPY sandbox ./sandbox
COPY config ./config
RUN pip install . && mkdir -p /app/var && chown leadroute:leadroute /app/var
# Celery's -A imports the app from the working directory, so the worker and beat run these copies, in a
# folder their user cannot write: compiled here, or every start compiles them again (~0.4 s of each restart).
RUN python -m compileall -q worker connectors sandbox
USER leadroute
# Logs as JSON lines on stderr; beat's schedule file and the embedded fallbacks live under /app/var.
ENV LEADROUTE_LOG_FORMAT=json
EXPOSE 8000
CMD ["leadroute", "web", "--host", "0.0.0.0", "--port", "8000"]
