#include "escape.h"

#include <string.h>

/* How `byte` is written: itself, or as an escape of 2 (\" \\) or 4 (\xHH) characters. Only
 * printable ASCII passes; `quote` also escapes what would end or confuse a quoted value. */
static size_t escape_byte(unsigned char byte, bool quote, char piece[4]) {
  static const char hex[] = "0123456789abcdef";
  if (quote && (byte == '"' || byte == '\\')) {
    piece[0] = '\\';
    piece[1] = (char)byte;
    return 2;
  }
  if (byte < 0x20 || byte > 0x7e) {
    piece[0] = '\\';
    piece[1] = 'x';
    piece[2] = hex[byte >> 4];
    piece[3] = hex[byte & 15];
    return 4;
  }
  piece[0] = (char)byte;
  return 1;
}

void nvlar_escape(const char *text, size_t length, bool quote, bool cut, char *out,
                  size_t out_size) {
  if (out_size == 0) return;
  char piece[4];
  size_t needed = 0;
  for (size_t i = 0; i < length; i++) needed += escape_byte((unsigned char)text[i], quote, piece);
  cut = cut || needed >= out_size;
  const size_t ellipsis = cut ? (out_size > 3 ? 3 : out_size - 1) : 0;
  const size_t room = out_size - 1 - ellipsis;
  size_t used = 0;
  for (size_t i = 0; i < length; i++) {
    size_t piece_length = escape_byte((unsigned char)text[i], quote, piece);
    if (used + piece_length > room) break; /* never half an escape */
    memcpy(out + used, piece, piece_length);
    used += piece_length;
  }
  memset(out + used, '.', ellipsis);
  out[used + ellipsis] = '\0';
}

const char *nvlar_quotable(const char *text, char *out, size_t out_size) {
  nvlar_escape(text, strlen(text), true, false, out, out_size);
  return out;
}
