/* libFuzzer harness of the tuning-table parser (tuner/tuning_table.c): the bytes of an
 * NVLAR_TUNING_FILE, NUL bytes and all. Beyond "no crash, no sanitizer report" it checks what
 * every caller relies on: each kept row is well formed and within the format's ranges, each
 * malformed line is reported with a line number that exists and a reason, the hash depends on
 * the rows only, the C-string entry point agrees where the text has no NUL, and the lookups
 * return only rows that match. Any broken promise aborts, which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tuning_table.h"

#define CHECK(condition)                                                                       \
  do {                                                                                         \
    if (!(condition)) {                                                                        \
      fprintf(stderr, "fuzz_tuning_table: broken: %s (line %d)\n", #condition, __LINE__);      \
      abort();                                                                                 \
    }                                                                                          \
  } while (0)

struct report {
  int warnings;
  int lines; /* lines in the input */
};

static void check_warning(void *ctx, const char *source, int line, const char *why) {
  struct report *report = ctx;
  CHECK(strcmp(source, "fuzz") == 0);
  CHECK(line >= 1 && line <= report->lines);
  CHECK(why != NULL && why[0] != '\0');
  report->warnings++;
}

static void check_row(const struct nvlar_tuning_row *row, int lines) {
  CHECK(row->line >= 1 && row->line <= lines);
  CHECK(row->min_bytes <= row->max_bytes);
  CHECK(row->min_ranks >= 1 && row->min_ranks <= row->max_ranks && row->max_ranks <= (1 << 30));
  CHECK(row->arch == 0 || (row->arch >= 10 && row->arch <= 1000));
  if (row->kind == NVLAR_ROW_KERNEL) {
    CHECK(row->kernel >= 0 && row->kernel <= NVLAR_ALGO_NCCL);
    CHECK(row->count >= 0 && row->count <= 128);
    CHECK(row->min_budget >= 1 && row->min_budget <= NVLAR_TUNING_MAX_BUDGET);
    CHECK(row->min_budget <= row->max_budget);
    CHECK(row->max_budget <= NVLAR_TUNING_MAX_BUDGET || row->max_budget == NVLAR_TUNING_ANY_BUDGET);
  } else {
    CHECK(row->kind == NVLAR_ROW_NCCL);
    CHECK(row->min_nodes >= 1 && row->min_nodes <= row->max_nodes && row->max_nodes <= (1 << 30));
    CHECK(row->collective >= -1 && row->collective <= 4);
    CHECK(strcmp(nvlar_tuning_algo_name(row->algo), "?") != 0);
    CHECK(strcmp(nvlar_tuning_proto_name(row->proto), "?") != 0);
    CHECK(row->count >= 0 && row->count <= 64);
  }
}

/* A number from the input, for the lookups: the same input always asks the same questions. */
static uint64_t take(const uint8_t *data, size_t size, size_t at) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && at + i < size; i++) value = value << 8 | data[at + i];
  return value;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct nvlar_tuning_table table, again;
  const char *text = (const char *)data;
  struct report report = {0, 0};
  for (size_t i = 0; i < size; i++) report.lines += data[i] == '\n';
  report.lines += size > 0 && data[size - 1] != '\n';

  int rows = nvlar_tuning_parse_bytes(text, size, "fuzz", &table, check_warning, &report);
  CHECK(rows == table.nrows && rows >= 0 && rows <= NVLAR_TUNING_MAX_ROWS);
  CHECK(rows + report.warnings <= report.lines);
  CHECK(strcmp(table.source, "fuzz") == 0);
  for (int i = 0; i < rows; i++) {
    check_row(&table.rows[i], report.lines);
    if (i > 0) CHECK(table.rows[i].line > table.rows[i - 1].line);
  }

  /* Parsing is a function of the bytes: the same rows and hash again. */
  nvlar_tuning_parse_bytes(text, size, "fuzz", &again, NULL, NULL);
  CHECK(again.nrows == rows && again.hash == table.hash);
  CHECK(memcmp(again.rows, table.rows, (size_t)rows * sizeof(table.rows[0])) == 0);

  /* Without a NUL byte, the C-string entry point reads the same table. */
  if (memchr(data, '\0', size) == NULL) {
    char *copy = malloc(size + 1);
    if (copy != NULL) {
      memcpy(copy, data, size);
      copy[size] = '\0';
      nvlar_tuning_parse(copy, "fuzz", &again, NULL, NULL);
      CHECK(again.nrows == rows && again.hash == table.hash);
      free(copy);
    }
  }

  /* Lookups: only a matching row, and the first one. */
  uint64_t bytes = take(data, size, 0);
  int nranks = (int)(take(data, size, 8) % 10);
  int arch = (int)(take(data, size, 16) % 120);
  int budget = 1 + (int)(take(data, size, 40) % 70);
  const struct nvlar_tuning_row *row =
      nvlar_tuning_find_kernel(&table, bytes, nranks, arch, budget);
  if (row != NULL) {
    CHECK(row->kind == NVLAR_ROW_KERNEL && bytes >= row->min_bytes && bytes <= row->max_bytes);
    CHECK(nranks >= row->min_ranks && nranks <= row->max_ranks);
    CHECK(row->arch == 0 || row->arch == arch);
    CHECK(budget >= row->min_budget && budget <= row->max_budget);
    for (const struct nvlar_tuning_row *earlier = table.rows; earlier < row; earlier++) {
      CHECK(earlier->kind != NVLAR_ROW_KERNEL || bytes < earlier->min_bytes ||
            bytes > earlier->max_bytes || nranks < earlier->min_ranks ||
            nranks > earlier->max_ranks || (earlier->arch != 0 && earlier->arch != arch) ||
            budget < earlier->min_budget || budget > earlier->max_budget);
    }
  }
  int collective = (int)(take(data, size, 24) % 6);
  int nnodes = (int)(take(data, size, 32) % 4);
  row = nvlar_tuning_find_nccl(&table, collective, bytes, nranks, nnodes, arch);
  if (row != NULL) {
    CHECK(row->kind == NVLAR_ROW_NCCL && (row->collective == -1 || row->collective == collective));
    CHECK(bytes >= row->min_bytes && bytes <= row->max_bytes);
    CHECK(nnodes >= row->min_nodes && nnodes <= row->max_nodes);
  }
  return 0;
}
