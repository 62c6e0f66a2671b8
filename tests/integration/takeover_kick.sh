#!/usr/bin/env bash
# The takeover kick (lbd_kick.h): the bulk failover drill (failover_bulk.sh)
# with lb2's keepalived frozen for 0.7 s when lb1 dies, so that every end
# with data outstanding has lost two retransmissions and backed off before
# the VIPs move; every stream must move again soon after they do.
FAILOVER_VARIANT=slow exec bash "$(dirname "$0")/failover_bulk.sh" "$@"
