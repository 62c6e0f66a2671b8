/*
 * libFuzzer harness: arbitrary bytes as a capture file into the drill's pcap
 * reader, read to the end. Any file nobody here produced must be refused
 * with a message or read record by record, never read out of bounds. The
 * bytes go through a memfd, since libpcap reads files. Build and run:
 * tests/fuzz/run pcap.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../drill/drill_pcap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.pcap", 0);
	char path[64], err[256];
	struct drill_pcap *p;
	struct drill_pcap_pkt pkt;
	volatile uint8_t sink = 0;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	p = drill_pcap_open(path, err, sizeof(err));
	if (p) {
		while (drill_pcap_next(p, &pkt, err, sizeof(err)) == 1)
			for (size_t i = 0; i < pkt.caplen; i++)
				sink ^= pkt.data[i];	/* every byte it hands out is readable */
		drill_pcap_close(p);
	}
	close(fd);
	(void)sink;
	return 0;
}
