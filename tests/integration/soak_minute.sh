#!/usr/bin/env bash
# The one-minute soak: tests/soak/soak.sh with SOAK_SECONDS=60 (two
# failovers). `make soak` runs the long one.
export SOAK_SECONDS=${SOAK_SECONDS:-60}
exec bash "$(dirname "$0")/../soak/soak.sh"
