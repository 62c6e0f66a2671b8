/*
 * lb_csum: Internet checksums (RFC 1071) and their incremental update
 * (RFC 1624).
 *
 * Sums are carried unfolded in 32 bits (a "partial" sum) until lb_csum_fold()
 * folds and complements them into the 16-bit field value. Data is read in
 * network byte order, and field values are returned in network byte order
 * ready to memcpy into a header.
 */
#ifndef LB_CSUM_H
#define LB_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* Adds len bytes of data to a partial sum. Works for any alignment and length. */
uint32_t lb_csum_add(uint32_t sum, const void *data, size_t len);

/* Folds a partial sum and complements it: the value to store in the field. */
uint16_t lb_csum_fold(uint32_t sum);

/*
 * RFC 1624 eqn. 3: the new field value after a 16-bit word of the covered
 * data changed from old_word to new_word. field is the current field value.
 * All three in network byte order as read with memcpy.
 */
uint16_t lb_csum_update16(uint16_t field, uint16_t old_word, uint16_t new_word);

/* The same for a run of len bytes (len even) that changed from old to new. */
uint16_t lb_csum_update(uint16_t field, const void *old_bytes, const void *new_bytes,
			size_t len);

/*
 * Partial sum of the TCP/UDP pseudo-header: addresses of alen bytes (4 or 16),
 * protocol and L4 length.
 */
uint32_t lb_csum_pseudo(const uint8_t *src, const uint8_t *dst, size_t alen,
			uint8_t proto, uint32_t l4_len);

#endif
