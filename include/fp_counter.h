/*
 * fp_counter: the kernel fast path's counters (fastpath/), one per reason:
 * what the tc program forwarded itself, and why it passed a packet up to the
 * NFQUEUE path unchanged. Kept per CPU in the program's fp_stats map;
 * fp_counters() (fastpath.h) sums them. Plain C with no includes, so the BPF
 * program and the loader share it.
 */
#ifndef FP_COUNTER_H
#define FP_COUNTER_H

#define FP_COUNTER_LIST(X)						\
	X(FWD_ORIG, "fp_fwd_orig")		/* requests forwarded */	\
	X(FWD_REPLY, "fp_fwd_reply")		/* replies forwarded */	\
	X(FWD_BYTES, "fp_fwd_bytes")		/* their IP bytes */	\
	X(FWD_SLACK, "fp_fwd_slack")		/* with the takeover slack */ \
	X(PASS_DISABLED, "fp_pass_disabled")	/* switched off (capture) */ \
	X(PASS_NOT_IP, "fp_pass_not_ip")				\
	X(PASS_IP_OPTIONS, "fp_pass_ip_options")			\
	X(PASS_FRAGMENT, "fp_pass_fragment")				\
	X(PASS_NOT_TCP, "fp_pass_not_tcp")				\
	X(PASS_MALFORMED, "fp_pass_malformed")	/* lengths inconsistent */ \
	X(PASS_FLAGS, "fp_pass_flags")		/* SYN, FIN, RST, no ACK */ \
	X(PASS_NO_ENTRY, "fp_pass_no_entry")	/* not an installed flow */ \
	X(PASS_STATE, "fp_pass_state")		/* entry not established */ \
	X(PASS_WINDOW, "fp_pass_window")	/* fails a window check */ \
	X(PASS_TTL, "fp_pass_ttl")		/* would expire here */	\
	X(PASS_NO_ROUTE, "fp_pass_no_route")	/* FIB lookup failed */	\
	X(PASS_REWRITE, "fp_pass_rewrite")	/* a helper failed */ \
	X(SIGNALS, "fp_signals")		/* replication signals sent */ \
	X(SIGNALS_LOST, "fp_signals_lost")	/* ring full: the sweep's */

enum fp_counter {
#define FP_COUNTER_ENUM(id, name) FP_CNT_##id,
	FP_COUNTER_LIST(FP_COUNTER_ENUM)
#undef FP_COUNTER_ENUM
	FP_CNT_COUNT
};

#endif
