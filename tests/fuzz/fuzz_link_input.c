/*
 * libFuzzer harness: arbitrary bytes as one datagram into sync_link_input(),
 * under a fixed key. This is the trust boundary as the network sees it: the
 * size, prefix and HMAC checks must refuse everything (a forged HMAC is out
 * of reach), count it, and change nothing else. fuzz_link_sealed.c gets past
 * the HMAC to fuzz what lies behind it.
 *
 * Build and run: tests/fuzz/run link_input (make fuzz runs every harness).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[32] = "fuzz key: 32 bytes, fixed.......";

static void fz_send(void *arg, const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	abort();	/* nothing unauthenticated may make the link speak */
}

static void fz_deliver(void *arg, const uint8_t *p, size_t len, uint64_t seq)
{
	(void)arg;
	(void)p;
	(void)len;
	(void)seq;
	abort();
}

static const struct sync_link_ops fz_ops = { .send = fz_send, .deliver = fz_deliver };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_link_conf conf = {
		.node_id = 1, .peer_id = 2, .epoch = 1000, .key = fuzz_key, .key_len = sizeof(fuzz_key),
		.ring = 64, .mtu = 1400, .heartbeat_ms = 100, .nack_delay_ms = 2,
		.nack_retry_ms = 20, .peer_timeout_ms = 1000,
	};
	struct sync_link *link = sync_link_new(&conf, &fz_ops, NULL, 0);
	const struct sync_link_stats *st;
	uint8_t *copy;

	if (!link)
		abort();
	/* an exact-size heap copy, so ASan sees any read past the end */
	copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	sync_link_input(link, copy, size, 1);
	st = sync_link_stats(link);
	if (st->received != 0 || st->bad_size + st->bad_magic + st->bad_hmac != 1)
		abort();
	free(copy);
	sync_link_free(link);
	return 0;
}
