/* Test helper: runs a program with changes to the environment and captures its output. */
#ifndef NVLAR_TEST_SPAWN_H
#define NVLAR_TEST_SPAWN_H

#include <stddef.h>

/* Runs `argv[0]` with the environment changed by `env` ("NAME=value" sets, "NAME" unsets;
 * NULL-terminated), captures standard output and standard error together into `output`
 * (NUL-terminated, truncated to `size`), and returns the exit status, or -1 if it did not exit
 * normally. */
int nvlar_test_run(char *const argv[], const char *const env[], char *output, size_t size);

/* How many lines of `text` contain `needle`. */
int nvlar_test_count_lines(const char *text, const char *needle);

#endif
