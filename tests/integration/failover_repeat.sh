#!/usr/bin/env bash
# Repeated failovers, short: the soak (tests/soak/soak.sh) with a failover
# every FAILOVER_REPEAT_EVERY seconds (3) for FAILOVER_REPEAT_SECONDS (20):
# each round kills the master, the backup takes over, the dead node is
# revived (resynced, backup) and is the next round's takeover target: a
# failback onto a node that has just resynced, again and again. No stream
# may be lost. `make failover-repeat` runs it for a minute.
export SOAK_SECONDS=${FAILOVER_REPEAT_SECONDS:-20}
export SOAK_FAILOVER_EVERY=${FAILOVER_REPEAT_EVERY:-3}
export SOAK_CONNS4=${SOAK_CONNS4:-50}
export SOAK_CONNS6=${SOAK_CONNS6:-10}
exec bash "$(dirname "$0")/../soak/soak.sh"
