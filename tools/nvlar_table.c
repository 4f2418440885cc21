/* nvlar-table: checks a tuning table (docs/tuning.md) and prints how nvlar reads it. It reads
 * the file with the library's own reader (nvlar_tuning_load_file), so that it accepts and
 * refuses what NVLAR_TUNING_FILE would. With --algorithms it prints the algorithm table
 * (kernels/nvlar_algos.h) for the scripts, which keep no list of their own. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvlar_algos.h"
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

/* The algorithms in the order of the table's rows (the values need not follow it). */
static const int algos_in_row_order[NVLAR_ALGO_COUNT] = {
#define NVLAR_ALGO_IN_ROW_ORDER(id, ...) NVLAR_ALGO_##id,
    NVLAR_ALGOS(NVLAR_ALGO_IN_ROW_ORDER)
#undef NVLAR_ALGO_IN_ROW_ORDER
};

/* Whether a row of the built-in tuning table names `algo`: with NVLAR_ALGO=auto and no
 * NVLAR_TUNING_FILE, some calls may then run it. */
static bool builtin_names(const struct nvlar_tuning_table *builtin, int algo) {
  for (int i = 0; i < builtin->nrows; i++) {
    if (builtin->rows[i].kind == NVLAR_ROW_KERNEL && builtin->rows[i].kernel == algo) return true;
  }
  return false;
}

/* --algorithms: a header line naming the columns, then one line per algorithm in the table's
 * order, fields separated by tabs (a title holds spaces). Scripts read the columns by name, so
 * a column added later breaks none of them; docs/usage.md describes each. */
static void print_algorithms(const struct nvlar_tuning_table *builtin) {
  printf("name\tvalue\ttitle\tmin_arch\tbelow_arch\tmax_bytes\tabove_max\tbytes_per_cta\t"
         "most_ctas\tbuiltin\n");
  for (int i = 0; i < NVLAR_ALGO_COUNT; i++) {
    int algo = algos_in_row_order[i];
    const struct nvlar_algo_desc *d = &nvlar_algo_descs[algo];
    printf("%s\t%d\t%s\t%d\t%s\t%zu\t%s\t%zu\t%d\t%s\n", d->name, algo, d->title, d->min_arch,
           nvlar_algo_name(d->below_arch), d->max_bytes, nvlar_algo_name(d->above_max),
           d->bytes_per_cta, d->most_ctas, builtin_names(builtin, algo) ? "yes" : "no");
  }
}

int main(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(argc == 2 ? stdout : stderr,
            "usage: nvlar-table FILE | --builtin | --algorithms\n"
            "Parses a tuning table, prints its rows as nvlar reads them, and exits 1 if any\n"
            "line is malformed (each one is named with its line number) or if nvlar would not\n"
            "use the file at all (not a regular file, unreadable, larger than 16 MiB, or no\n"
            "valid row: nvlar then uses its built-in table).\n"
            "--algorithms prints nvlar's all-reduce algorithms instead, for scripts: a header\n"
            "line, then one line per algorithm in the table's order, fields separated by tabs:\n"
            "  name           the word of NVLAR_ALGO and of tuning-table rows\n"
            "  value          its number (enum nvlar_algo)\n"
            "  title          what tables and plots call it\n"
            "  min_arch       compute capability x 10 it needs (0: any) ...\n"
            "  below_arch     ... and the algorithm that runs instead below it\n"
            "  max_bytes      its largest message in bytes (0: no cap) ...\n"
            "  above_max      ... and the algorithm that runs instead above it\n"
            "  bytes_per_cta  default CTAs per rank: one per this many bytes ...\n"
            "  most_ctas      ... and at most this many\n"
            "  builtin        yes if a row of the built-in table names it, else no\n");
    return argc == 2 ? 0 : 2;
  }
  struct nvlar_tuning_table *table = malloc(sizeof(*table));
  if (table == NULL) return 1;
  if (strcmp(argv[1], "--algorithms") == 0) {
    nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", table, report, NULL);
    print_algorithms(table);
    free(table);
    return problems ? 1 : 0;
  }
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
      if (r->max_budget == NVLAR_TUNING_ANY_BUDGET && r->min_budget > 1) {
        printf(" budget=%d-*", r->min_budget);
      } else if (r->max_budget != NVLAR_TUNING_ANY_BUDGET) {
        printf(" budget=%d-%d", r->min_budget, r->max_budget);
      }
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
