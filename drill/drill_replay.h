/*
 * drill_replay: `lbdrill replay`, failover drills on a capture.
 *
 * A capture is replayed twice: through one engine that never fails over
 * (the reference), and through an active/standby pair linked by the real
 * sync stack (drill_pair), failing over before a chosen packet. Every
 * verdict and rewritten packet after the failover is compared with the
 * reference. A connection is lost when the pair dropped a packet of it that
 * the reference forwarded. A lost connection is "unsynchronised" when the
 * standby, at the moment of the failover, did not hold the handshake state
 * the active had (its creation fell in the window replication had not yet
 * covered); any other loss, and any packet rewritten differently for a
 * connection that existed before the failover, is a failure of the
 * takeover itself.
 *
 * Exit status: 0 nothing lost; 1 only unsynchronised connections lost (what
 * async mode allows); 3 a connection the standby held was lost, or rewritten
 * differently; 2 bad usage or input.
 */
#ifndef DRILL_REPLAY_H
#define DRILL_REPLAY_H

int drill_replay_main(int argc, char **argv);

#endif
