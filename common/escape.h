/* The user's bytes made fit to print. Values from the environment or from files (paths above
 * all) reach messages in many places, and none may split a log line, forge another, or send
 * escape sequences to a terminal. Used by the log for every line and by whoever quotes a value
 * in a message; it needs nothing else of nvlar. */
#ifndef NVLAR_ESCAPE_H
#define NVLAR_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Writes `length` bytes of `text` into `out` (NUL-terminated), every byte that is not
 * printable ASCII as \xHH; with `quote`, also a double quote as \" and a backslash as \\, so
 * that a quoted value reads back unambiguously. When the escaped text does not fit in
 * `out_size` bytes, or `cut` says `text` itself was already cut, it ends in "..." instead (an
 * escape is never split), so a shortened value never passes for the whole one. */
void nvlar_escape(const char *text, size_t length, bool quote, bool cut, char *out,
                  size_t out_size);

/* `text` made fit to quote in a message: nvlar_escape of the whole string with `quote`.
 * Returns `out`. */
const char *nvlar_quotable(const char *text, char *out, size_t out_size);

#endif
