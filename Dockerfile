# syntax=docker/dockerfile:1
#
# The hybrid-release worker. Node 24 runs the TypeScript sources directly (type stripping), so
# there is no compile step: the build stage only installs the production dependencies.
#
#   docker build -t hybrid-release-worker .
#   docker run --rm -e TEMPORAL_ADDRESS=host:7233 hybrid-release-worker
#
# The same image carries the CLI:
#   docker run --rm --entrypoint node hybrid-release-worker client/bin.ts list
#
# Debian (glibc), not Alpine: the Temporal core bridge and @swc/core (the workflow bundler) ship
# prebuilt native binaries for linux-*-gnu.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
COPY package.json package-lock.json ./
# `npm ci` is the intent. The lock currently lacks @swc/core's optional platform packages for
# other platforms (npm/cli#4828) and npm ci then refuses it; `npm install` still installs the
# locked versions of everything the lock has, so it is the loud fallback (as in
# scripts/npm-install.sh). Install scripts are not needed (the native binaries ship inside the
# packages) and are not run.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts \
    || { echo '!! npm ci refused the lock file; falling back to npm install --omit=dev' >&2; \
         npm install --omit=dev --ignore-scripts --no-save; }

FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="hybrid-release-worker" \
      org.opencontainers.image.description="Temporal worker that ships releases across Flux CD and Chef" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
ENV NODE_ENV=production \
    HR_HEALTH_ADDRESS=0.0.0.0:8080 \
    HR_METRICS_ADDRESS=0.0.0.0:9464 \
    HR_LOG_LEVEL=INFO \
    HR_SHUTDOWN_GRACE=30s \
    HOME=/home/node
# Only what runs: the dependencies, the package manifest (ESM "type": "module") and the sources
# the worker and the CLI import. No tests, scripts, docs or dev dependencies.
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json package-lock.json ./
COPY --chown=root:root activities ./activities
COPY --chown=root:root client ./client
COPY --chown=root:root policy ./policy
COPY --chown=root:root release-spec ./release-spec
COPY --chown=root:root worker ./worker
COPY --chown=root:root workflows ./workflows
# Mount points for credentials (read-only in compose and Kubernetes): Chef client keys named by
# `keyFile` in a spec (examples use /etc/hybrid-release/chef/), the knife credentials file
# (~/.chef/credentials) and a kubeconfig when not running in-cluster.
RUN mkdir -p /etc/hybrid-release/chef /home/node/.chef /home/node/.kube \
    && chown -R node:node /home/node
# Git mode commits with the git binary (activities/git/cli.ts explains why not a library); the
# CLI in this image signs approvers' decisions with ssh-keygen (the worker verifies them in
# policy/sshsig.ts and needs no OpenSSH).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The workflow bundle, built here once: the worker starts without webpack (faster, and about
# 190 MiB less resident memory; test/bench/README.md).
RUN node worker/bundle.ts /app/workflow-bundle.js
ENV HR_WORKFLOW_BUNDLE=/app/workflow-bundle.js
# The image's `node` user (uid/gid 1000), by number so Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 8080 9464
# /healthz answers while the process runs; /readyz (used by Kubernetes) only while polling Temporal.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "const a=process.env.HR_HEALTH_ADDRESS||':8080';fetch('http://127.0.0.1:'+a.slice(a.lastIndexOf(':')+1)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The worker handles SIGTERM itself (stops polling, lets in-flight activities finish within
# HR_SHUTDOWN_GRACE), so node can be PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "worker/main.ts"]
