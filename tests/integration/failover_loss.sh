#!/usr/bin/env bash
# The failover drill (failover.sh) with 10% of sync datagrams lost each way.
FAILOVER_VARIANT=loss exec bash "$(dirname "$0")/failover.sh" "$@"
