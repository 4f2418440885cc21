/* nvlar-table: checks a tuning table (docs/tuning.md) and prints how nvlar reads it. It reads
 * the file with the library's own reader (nvlar_tuning_load_file), so that it accepts and
 * refuses what NVLAR_TUNING_FILE would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tuning_table.h"

static int problems;

static void report(void *ctx, const char *source, int line, const char *why) {
  (void)ctx;
  fprintf(stderr, "%s:%d: %s\n", source, line, why);
  problems++;
}

static void print_bytes(unsigned long long bytes) {
  if (bytes == ~0ull) printf("inf");
  else printf("%llu", bytes);
}

int main(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(argc == 2 ? stdout : stderr,
            "usage: nvlar-table FILE | --builtin\n"
            "Parses a tuning table, prints its rows as nvlar reads them, and exits 1 if any\n"
            "line is malformed (each one is named with its line number) or if nvlar would not\n"
            "use the file at all (not a regular file, unreadable, larger than 16 MiB, or no\n"
            "valid row: nvlar then uses its built-in table).\n");
    return argc == 2 ? 0 : 2;
  }
  struct nvlar_tuning_table *table = malloc(sizeof(*table));
  if (table == NULL) return 1;
  if (strcmp(argv[1], "--builtin") == 0) {
    nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", table, report, NULL);
  } else {
    char why[192];
    if (!nvlar_tuning_load_file(argv[1], table, report, NULL, why, sizeof(why))) {
      fprintf(stderr, "%s: %s; nvlar would use its built-in table instead\n", argv[1], why);
      free(table);
      return 1;
    }
  }
  for (int i = 0; i < table->nrows; i++) {
    const struct nvlar_tuning_row *r = &table->rows[i];
    printf("line %d: %s bytes ", r->line, r->kind == NVLAR_ROW_KERNEL ? "nvlar" : "nccl ");
    print_bytes(r->min_bytes);
    printf("-");
    print_bytes(r->max_bytes);
    printf(" ranks %d-%d", r->min_ranks, r->max_ranks);
    if (r->kind == NVLAR_ROW_KERNEL) {
      printf(" arch %d -> %s", r->arch, nvlar_tuning_kernel_name(r->kernel));
      if (r->count) printf(" ctas=%d", r->count);
    } else {
      printf(" nodes %d-%d arch %d collective %s -> %s/%s", r->min_nodes, r->max_nodes, r->arch,
             nvlar_tuning_collective_name(r->collective), nvlar_tuning_algo_name(r->algo),
             nvlar_tuning_proto_name(r->proto));
      if (r->count) printf(" channels=%d", r->count);
    }
    printf("\n");
  }
  printf("%d rows, %d malformed lines, hash %016llx\n", table->nrows, problems,
         (unsigned long long)table->hash);
  free(table);
  return problems ? 1 : 0;
}
