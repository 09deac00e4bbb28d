# OneCard's server image: the identity provider and the wallet, served by gunicorn through `onecard serve`.
#
#   docker build -t onecard .
#   docker compose -f deploy/compose.yaml up --build      # the production topology (docs/deploy.md)
#
# Two stages: the first builds OneCard's wheel and a wheel of every dependency, the second installs them
# from that directory alone (no network, no build tools, no source tree in the final image).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build>=1.2"
# Only what the wheel is made of (.dockerignore keeps tests, var/, .venv and the rest out of the context);
# setup.py compiles the message catalogues into the wheel.
COPY pyproject.toml setup.py README.md ./
COPY sdk/ sdk/
COPY idp/ idp/
COPY wallet/ wallet/
COPY reader_bridge/ reader_bridge/
COPY migrations/ migrations/
COPY demo/ demo/
RUN python -m build --wheel --outdir /wheels . \
    && python -m pip wheel --wheel-dir /wheels "$(ls /wheels/onecard-*.whl)[server,pkcs11]"

FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The server extra (Flask, Authlib, SQLAlchemy, psycopg, redis, gunicorn, ...) and the PKCS#11 extra, for
# signing keys in an HSM (the HSM vendor's PKCS#11 module is mounted in; ONECARD_PKCS11_MODULE names it).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels "onecard[server,pkcs11]"

# A fixed unprivileged uid/gid (compose and Kubernetes refer to them): OneCard needs no privilege, and
# writes nothing but its temporary files — the image runs with a read-only root file system.
RUN groupadd --system --gid 10001 onecard \
    && useradd --system --uid 10001 --gid onecard --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin onecard
USER 10001:10001
# The only writable place: a tmpfs under compose's read-only root file system.
WORKDIR /tmp

# Settings are ONECARD_* variables (README.md "Configuration", docs/deploy.md). None has a usable default
# for production, so none is baked in here except the mode; secrets never go into the environment:
#   ONECARD_ENV=production            refuses debug, the development KEK, an http issuer, SQLite, no salt
#   ONECARD_ISSUER                    the public https URL (the proxy's), e.g. https://id.example.gov.cn
#   ONECARD_CONFIG_FILE               a TOML file (a mounted secret) with database_url, redis_url and
#                                     pairwise_salt — the settings that hold passwords or secrets
#   ONECARD_KEK_FILE                  the key-encryption keys, comma-separated base64url (a mounted secret)
#   ONECARD_TRUSTED_PROXY_COUNT=1     the TLS proxy in front (its X-Forwarded-For/-Proto are believed)
#   ONECARD_KEY_TICK_INTERVAL=300     the key scheduler in every node (one tick at a time across nodes)
#   ONECARD_PKCS11_MODULE, _TOKEN_LABEL, _PIN_FILE, _KEY_SETS   signing keys in an HSM (docs/runbook.md)
ENV ONECARD_ENV=production
EXPOSE 8000

# /readyz: database at head, store reachable, keys unwrap (idp/health.py). The slim image has no curl, so
# Python's urllib asks; a 503 raises HTTPError, which exits 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

# `onecard serve` migrates (a no-op once the one-shot `onecard db upgrade` ran), creates missing first keys
# (under a lock: nodes may start together), and runs gunicorn. gthread workers: the CPU-bound work (token
# signing, Ed25519, AES-GCM, templates) holds the GIL, so processes — one or two per core — carry the load;
# the threads are there for requests that wait, above all the QR-login status long-poll, which sleeps up to
# ONECARD_QR_LOGIN_POLL_SECONDS and would hold a whole sync worker per open login page. Size --workers to
# the container's CPU limit: os.cpu_count() in a container sees the host's cores.
CMD ["onecard", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--threads", "8"]
