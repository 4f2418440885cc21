/* Byte counts as users write them, in NVLAR_* variables (NVLAR_MAX_BYTES, NVLAR_BUFFER_BYTES),
 * tuning-table rows and nvlar-bench's options: one grammar everywhere.
 *
 *   [blanks] DIGITS [UNIT] [blanks]
 *   DIGITS  decimal digits, at least one: no sign, no fraction, no 0x, no separators
 *   UNIT    K, M or G (1024, 1024^2, 1024^3 bytes), then an optional i, then an optional B;
 *           or B alone (bytes)
 *
 * Case does not matter: 65536, 64K, 64k, 64KiB, 64kib and 64KB are the same count; every unit
 * is a power of 1024 (as NCCL and nccl-tests read K, M and G). Blanks are what isspace() takes,
 * before and after only. A count above 2^64 - 1 is refused, not wrapped. */
#ifndef NVLAR_BYTES_H
#define NVLAR_BYTES_H

#include <stdint.h>

/* Parses the whole of `text` into *bytes. Returns NULL, or why `text` is no byte count (a
 * constant text for messages; *bytes is then left alone). */
const char *nvlar_parse_bytes(const char *text, uint64_t *bytes);

#endif
