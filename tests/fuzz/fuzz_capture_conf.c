/*
 * libFuzzer harness: arbitrary bytes as the arguments of `lbctl capture
 * start` into lbd_capture_conf_parse() (lbd/capture.c; the control socket
 * hands it whatever a client wrote). Besides the sanitizers, the harness
 * aborts when the parser breaks its contract: success with a prefix that is
 * empty, not absolute, unterminated or too long, or limits outside their
 * ranges; failure without a message. Build and run: tests/fuzz/run
 * capture_conf.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lbd/lbd_capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lbd_capture_conf conf;
	char *args = malloc(size + 1), err[256];
	int rc;

	if (!args)
		return 0;
	memcpy(args, data, size);
	args[size] = '\0';		/* the control line is a C string */
	err[0] = '\0';
	rc = lbd_capture_conf_parse(args, &conf, err, sizeof(err));
	if (rc == 0) {
		size_t len = strnlen(conf.prefix, sizeof(conf.prefix));

		FZ_CHECK(len > 0 && len < sizeof(conf.prefix));
		FZ_CHECK(conf.prefix[0] == '/');
		FZ_CHECK(conf.snaplen > 0 && conf.snaplen <= LBD_CAPTURE_SNAPLEN_MAX);
		FZ_CHECK(conf.max_packets > 0 && conf.max_bytes > 0);
	} else {
		FZ_CHECK(rc == -EINVAL);
		FZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
	}
	free(args);
	return 0;
}
