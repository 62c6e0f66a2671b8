/*
 * drill_audit: `lbdrill audit`, the strict tracker against a capture.
 *
 * A capture is replayed through one engine (no pair, no failover), and
 * every packet the engine drops is listed: the record, its connection and
 * direction, its flags and sequence numbers, the drop reason and the
 * connection's tracker state before it. In a capture of healthy traffic
 * each drop is either the capture's own doing or a false positive of the
 * tracker; the audit explains what it can:
 *
 *   midstream      no SYN of the connection in the capture: it began
 *                  before the capture, and the engine never tracked it
 *   capture_loss   an endpoint acknowledged bytes of the connection that
 *                  the capture never saw (a gap in the sequence space the
 *                  endpoints ACKed), at or before this packet
 *   unexplained    neither: a candidate tracker false positive
 *
 * and summarises by reason and by explanation. Exit status: 0 no
 * unexplained drop, 1 unexplained drops, 2 bad usage or input.
 */
#ifndef DRILL_AUDIT_H
#define DRILL_AUDIT_H

int drill_audit_main(int argc, char **argv);

#endif
