/*
 * libFuzzer harness: arbitrary bytes as a drill hello (the first bytes a
 * `lbdrill serve` reads from any client) into drill_hello_decode(). Besides
 * the sanitizers, the harness aborts when the decoder breaks its contract:
 * a status out of range, a success on fewer than DRILL_HELLO_LEN bytes, a
 * failure that touched the output, or a success that does not survive
 * encoding and decoding again. Build and run: tests/fuzz/run hello.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../drill/drill_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct drill_hello untouched = { .rate = 0xdeadbeef, .seed = 0x1234 };
	struct drill_hello h = untouched, again;
	uint8_t out[DRILL_HELLO_LEN];
	uint8_t *copy = malloc(size ? size : 1);	/* exact size: ASan sees overreads */
	enum drill_hello_status st;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	st = drill_hello_decode(&h, copy, size);
	FZ_CHECK(st <= DRILL_HELLO_BAD_RESERVED);
	FZ_CHECK(strcmp(drill_hello_status_str(st), "?") != 0);
	if (st == DRILL_HELLO_OK) {
		FZ_CHECK(size >= DRILL_HELLO_LEN);
		drill_hello_encode(out, &h);
		FZ_CHECK(drill_hello_decode(&again, out, sizeof(out)) == DRILL_HELLO_OK);
		FZ_CHECK(again.rate == h.rate && again.seed == h.seed &&
			  again.limit_kib == h.limit_kib);
	} else {
		FZ_CHECK(memcmp(&h, &untouched, sizeof(h)) == 0);
		FZ_CHECK(size < DRILL_HELLO_LEN || st != DRILL_HELLO_SHORT);
	}
	free(copy);
	return 0;
}
