/*
 * libFuzzer harness: a script of datagrams *with a valid HMAC* (the harness
 * holds the key and seals them), interleaved with time passing and with our
 * own sends, so protobuf decoding and everything after the HMAC check are
 * fuzzed: identity and epoch checks, anti-replay, the receive window, holes,
 * Nacks, Gone, acks, retransmission. The link under test is node 1, epoch
 * 1000, its peer node 2; the fuzzer plays the peer (and any other node).
 *
 * Input, repeated until it runs out:
 *   op (1 byte) then, by op % 6:
 *     0  len (2 bytes LE), len bytes: a Packet body; sealed as
 *        'L' 'B' 1 0 | body | HMAC-SHA256, fed to sync_link_input()
 *     1  len (2 bytes LE), len bytes: fed as they are (unsealed)
 *     2  n (1 byte): the clock moves 4n ms, then sync_link_tick()
 *     3  n (1 byte): we send n bytes of Data (ack_request if op & 0x80)
 *     4  we ask for a resync
 *     5  r (1 byte): we set our status (role r % 5, ready r & 8)
 *
 * Besides the sanitizers, the harness aborts when the link breaks its
 * contract: a datagram out of the mtu or with a bad HMAC or decoding, our
 * msg_seq not increasing, a data_seq delivered twice or both delivered and
 * given up in one epoch of the peer, acked moving backwards or past what we
 * sent.
 *
 * Build and run: tests/fuzz/run link_sealed (make fuzz runs every harness).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lbsync.pb-c.h"
#include "sync_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MTU 600
#define FZ_TRACK 4096	/* data_seq followed for the once-only checks */
#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static const uint8_t fuzz_key[32] = "fuzz key: 32 bytes, fixed.......";

struct fz {
	struct sync_link *link;
	uint64_t now;
	uint64_t last_msg_seq;
	uint64_t last_acked;
	uint8_t delivered[FZ_TRACK];
	uint8_t lost[FZ_TRACK];
};

static void fz_mac(const uint8_t *buf, size_t len, uint8_t out[32])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, fuzz_key, sizeof(fuzz_key));
	crypto_auth_hmacsha256_update(&st, buf, len);
	crypto_auth_hmacsha256_final(&st, out);
}

/* Everything we send must be a well-formed, authenticated datagram. */
static void fz_send(void *arg, const uint8_t *buf, size_t len)
{
	struct fz *f = arg;
	uint8_t mac[32];
	Lbsync__Packet *pkt;

	FZ_CHECK(len >= 4 + 32 && len <= FZ_MTU);
	FZ_CHECK(memcmp(buf, "LB\1\0", 4) == 0);
	fz_mac(buf, len - 32, mac);
	FZ_CHECK(memcmp(mac, buf + len - 32, 32) == 0);
	pkt = lbsync__packet__unpack(NULL, len - 36, buf + 4);
	FZ_CHECK(pkt != NULL);
	FZ_CHECK(pkt->node_id == 1 && pkt->epoch == 1000);
	FZ_CHECK(pkt->msg_seq == f->last_msg_seq + 1);
	FZ_CHECK(pkt->body_case != LBSYNC__PACKET__BODY__NOT_SET);
	f->last_msg_seq = pkt->msg_seq;
	lbsync__packet__free_unpacked(pkt, NULL);
}

static void fz_deliver(void *arg, const uint8_t *p, size_t len, uint64_t seq)
{
	struct fz *f = arg;
	uint8_t sum = 0;
	size_t i;

	for (i = 0; i < len; i++)	/* the payload must be readable */
		sum ^= p[i];
	(void)sum;
	FZ_CHECK(seq >= 1);
	if (seq < FZ_TRACK) {
		FZ_CHECK(!f->delivered[seq] && !f->lost[seq]);
		f->delivered[seq] = 1;
	}
}

static void fz_lost(void *arg, uint64_t first, uint64_t last)
{
	struct fz *f = arg;

	FZ_CHECK(first >= 1 && first <= last);
	for (uint64_t s = first; s <= last && s < FZ_TRACK; s++) {
		FZ_CHECK(!f->delivered[s] && !f->lost[s]);
		f->lost[s] = 1;
	}
}

static void fz_restarted(void *arg, uint64_t epoch)
{
	struct fz *f = arg;

	(void)epoch;
	memset(f->delivered, 0, sizeof(f->delivered));
	memset(f->lost, 0, sizeof(f->lost));
}

static void fz_acked(void *arg, uint64_t acked)
{
	struct fz *f = arg;

	FZ_CHECK(acked > f->last_acked && acked <= sync_link_last_sent(f->link));
	f->last_acked = acked;
}

static void fz_resync(void *arg, uint64_t id)
{
	(void)arg;
	(void)id;
}

static const struct sync_link_ops fz_ops = {
	.send = fz_send, .deliver = fz_deliver, .lost = fz_lost,
	.peer_restarted = fz_restarted, .acked = fz_acked, .resync_request = fz_resync,
};

/* Feeds len bytes, sealed or not, as one datagram in an exact-size buffer. */
static void fz_datagram(struct fz *f, const uint8_t *body, size_t len, int seal)
{
	size_t total = seal ? 4 + len + 32 : len;
	uint8_t *buf = malloc(total ? total : 1);

	FZ_CHECK(buf != NULL);
	if (seal) {
		memcpy(buf, "LB\1\0", 4);
		memcpy(buf + 4, body, len);
		fz_mac(buf, 4 + len, buf + 4 + len);
	} else {
		memcpy(buf, body, len);
	}
	sync_link_input(f->link, buf, total, f->now);
	free(buf);
}

/* Runs one op; returns the bytes it used after the op byte. */
static size_t fz_op(struct fz *f, uint8_t op, const uint8_t *p, size_t left)
{
	uint8_t zeros[256] = { 0 };
	size_t len, n;

	switch (op % 6) {
	case 0:
	case 1:
		if (left < 2)
			return left;
		len = (size_t)p[0] | (size_t)p[1] << 8;
		n = len < left - 2 ? len : left - 2;
		fz_datagram(f, p + 2, n, op % 6 == 0);
		return 2 + n;
	case 2:
		if (left < 1)
			return left;
		f->now += 4 * (uint64_t)p[0];
		sync_link_tick(f->link, f->now);
		return 1;
	case 3:
		if (left < 1)
			return left;
		sync_link_send_data(f->link, zeros, p[0], op & 0x80, f->now);
		return 1;
	case 4:
		sync_link_request_resync(f->link, 0, f->now);
		return 0;
	default:
		if (left < 1)
			return left;
		sync_link_set_status(f->link, (enum sync_role)(p[0] % 5), p[0] & 8);
		return 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_link_conf conf = {
		.node_id = 1, .peer_id = 2, .epoch = 1000, .key = fuzz_key, .key_len = sizeof(fuzz_key),
		.ring = 64, .mtu = FZ_MTU, .heartbeat_ms = 100, .nack_delay_ms = 2,
		.nack_retry_ms = 20, .peer_timeout_ms = 1000,
	};
	static struct fz f;	/* big bitmaps: off the stack */
	size_t pos = 0;

	memset(&f, 0, sizeof(f));
	f.now = 1;
	f.link = sync_link_new(&conf, &fz_ops, &f, f.now);
	FZ_CHECK(f.link != NULL);
	while (pos < size) {
		uint8_t op = data[pos++];

		pos += fz_op(&f, op, data + pos, size - pos);
		FZ_CHECK(sync_link_peer_acked(f.link) <= sync_link_last_sent(f.link));
	}
	sync_link_free(f.link);
	return 0;
}
