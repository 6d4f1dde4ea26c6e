#!/usr/bin/env bash
# Installs the Docker engine and debootstrap where missing and starts the engine (as root).
# Without them the docker backend is unavailable and its tests skip, saying so.
set -uo pipefail

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap) >/dev/null 2>&1 \
      || echo "warning: could not install docker.io/debootstrap" >&2
  fi
fi
if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
if docker info >/dev/null 2>&1; then
  echo "docker engine: $(docker info --format '{{.ServerVersion}}')"
else
  echo "warning: no Docker engine answers; the docker tests will skip" >&2
fi
