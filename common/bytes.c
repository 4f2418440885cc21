#include "bytes.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>

/* The power of 1024 that a unit's letter stands for, or -1. */
static int unit_shift(char letter) {
  switch (toupper((unsigned char)letter)) {
    case 'K': return 10;
    case 'M': return 20;
    case 'G': return 30;
    default: return -1;
  }
}

const char *nvlar_parse_bytes(const char *text, uint64_t *bytes) {
  const char *p = text;
  while (isspace((unsigned char)*p)) p++;
  if (*p == '-' || *p == '+') return "a byte count takes no sign";
  if (!isdigit((unsigned char)*p)) return "no digits";
  uint64_t value = 0;
  bool too_large = false;
  /* Digits by hand rather than strtoull, which would take a sign and wrap a negative count. */
  for (; isdigit((unsigned char)*p); p++) {
    unsigned digit = (unsigned)(*p - '0');
    if (value > (UINT64_MAX - digit) / 10) too_large = true;
    value = value * 10 + digit;
  }
  int shift = unit_shift(*p);
  if (shift >= 0) {
    p++;
    if (*p == 'i' || *p == 'I') p++;
    if (*p == 'b' || *p == 'B') p++;
  } else {
    shift = 0;
    if (*p == 'b' || *p == 'B') p++;
  }
  if (*p != '\0' && !isspace((unsigned char)*p)) {
    return "a whole number, then K, M, G (KiB, KB) or nothing";
  }
  while (isspace((unsigned char)*p)) p++;
  if (*p != '\0') return "a blank inside the count";
  if (too_large || value > (UINT64_MAX >> shift)) return "more than 2^64 - 1 bytes";
  *bytes = value << shift;
  return NULL;
}
