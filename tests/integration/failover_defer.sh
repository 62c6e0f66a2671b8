#!/usr/bin/env bash
# The failover drill (failover.sh) with lbd's zero-loss `defer` mode on.
FAILOVER_VARIANT=defer exec bash "$(dirname "$0")/failover.sh" "$@"
