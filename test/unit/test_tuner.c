/* The tuning-table parser; the table file as NVLAR_TUNING_FILE reads it, and nvlar-table with
 * it: each file it cannot use (a directory, a FIFO, a device, a read error, too large, no
 * valid row) gives its reason and the built-in table, and never blocks; and the tuner plugin
 * as NCCL sees it: each exported version's struct found with dlopen(RTLD_NOW | RTLD_LOCAL) +
 * dlsym("ncclTunerPlugin_vN"), called on synthetic cost tables for every collective type. */
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn.h"
#include "tuner_abi.h"
#include "tuning_table.h"

/* ---- parser */

struct warnings {
  int count;
  int lines[32];
  char last[256];
};

static void collect(void *ctx, const char *source, int line, const char *why) {
  struct warnings *w = ctx;
  (void)source;
  if (w->count < 32) w->lines[w->count] = line;
  w->count++;
  snprintf(w->last, sizeof(w->last), "%s", why);
}

static void test_parse_valid(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  const char *text =
      "# comment line\n"
      "\n"
      "nvlar 0-512K 2-4 sm90 oneshot      # trailing comment\n"
      "nvlar 512K-16M * 90 twoshot ctas=24\n"
      "nvlar 16M-inf * * nccl\n"
      "nccl allreduce 0-64K 2-8 1 ring ll channels=4\n"
      "nccl * 1G-inf * 2-* tree simple\n"
      "nccl allgather 1M-8M 2 1 ring ll128 channels=32 arch=sm90\n"
      "nccl broadcast 0-1K 2 1 ring ll arch=100 channels=2\n";
  assert_int_equal(nvlar_tuning_parse(text, "t", &table, collect, &w), 7);
  assert_int_equal(w.count, 0);
  const struct nvlar_tuning_row *r = &table.rows[0];
  assert_int_equal(r->kind, NVLAR_ROW_KERNEL);
  assert_int_equal(r->line, 3);
  assert_int_equal(r->max_bytes, 512 << 10);
  assert_int_equal(r->min_ranks, 2);
  assert_int_equal(r->max_ranks, 4);
  assert_int_equal(r->arch, 90);
  assert_int_equal(table.rows[1].count, 24);
  assert_int_equal(table.rows[2].max_bytes, UINT64_MAX);
  r = &table.rows[3];
  assert_int_equal(r->kind, NVLAR_ROW_NCCL);
  assert_int_equal(r->collective, NVLAR_FUNC_ALLREDUCE);
  assert_int_equal(r->algo, NVLAR_ALGO_RING);
  assert_int_equal(r->proto, NVLAR_PROTO_LL);
  assert_int_equal(r->count, 4);
  assert_int_equal(table.rows[4].collective, -1);
  assert_int_equal(table.rows[4].min_bytes, (uint64_t)1 << 30);
  assert_int_equal(table.rows[4].min_nodes, 2);
  assert_int_equal(table.rows[4].arch, 0);
  /* arch= and channels= in either order. */
  assert_int_equal(table.rows[5].arch, 90);
  assert_int_equal(table.rows[5].count, 32);
  assert_int_equal(table.rows[6].arch, 100);
  assert_int_equal(table.rows[6].count, 2);
}

static void test_parse_malformed(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  const char *text =
      "nvlar 0-1K * * oneshot\n"               /* 1: good */
      "nvlar 0-1K * *\n"                       /* 2: too few fields */
      "nvlar 0-1K * * threeshot\n"             /* 3: unknown kernel */
      "nvlar 5K-1K * * oneshot\n"              /* 4: empty range */
      "nvlar 0-99999999999999999999 * * nccl\n" /* 5: number too large */
      "nvlar 0-20000000000G * * nccl\n"        /* 6: overflows after the suffix */
      "nccl allreduce 0-1K * * ring fast\n"    /* 7: unknown protocol */
      "nccl allreduce 0-1K 0 * ring ll\n"      /* 8: zero ranks */
      "nccl allreduce 0-1K 8-2 * ring ll\n"    /* 9: empty rank range */
      "frobnicate 1 2 3\n"                     /* 10: unknown row */
      "nvlar 0-1K * * oneshot ctas=0\n"        /* 11: bad CTA count */
      "nccl allreduce 0-1K * * ring ll channels=65 extra\n" /* 12: too many fields */
      "nvlar -5-1K * * oneshot\n"              /* 13: negative */
      "nvlar 0-1K * * twoshot\n"               /* 14: good */
      "nccl allreduce 0-1K * * ring ll arch=sm\n"               /* 15: no architecture */
      "nccl allreduce 0-1K * * ring ll channels=4 channels=8\n" /* 16: channels twice */
      "nccl allreduce 0-1K * * ring ll arch=90 arch=90\n"       /* 17: arch twice */
      "nccl allreduce 0-1K * * ring ll ctas=4\n"                /* 18: not an nccl field */
      "nvlar 0-1K * * oneshot budget=0-8\n"    /* 19: budget below 1 */
      "nvlar 0-1K * * oneshot budget=65\n"     /* 20: above NCCL's 64 channels */
      "nvlar 0-1K * * oneshot budget=16-8\n"   /* 21: empty budget range */
      "nvlar 0-1K * * oneshot budget=1-8 budget=9-16\n" /* 22: budget twice */
      "nvlar 0-1K * * oneshot ctas=4 ctas=8\n" /* 23: ctas twice */
      "nvlar 0-1K * * oneshot budget=\n"       /* 24: no budget */
      "nvlar 0-1K * * oneshot channels=4\n"    /* 25: not an nvlar field */
      "nvlar 0-1K * * oneshot ctas=4 budget=8 x\n"; /* 26: too many fields */
  assert_int_equal(nvlar_tuning_parse(text, "t", &table, collect, &w), 2);
  assert_int_equal(w.count, 24);
  int want[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18,
                19, 20, 21, 22, 23, 24, 25, 26};
  for (int i = 0; i < 24; i++) assert_int_equal(w.lines[i], want[i]);
  assert_int_equal(table.rows[1].line, 14);
}

static void test_parse_limits(void **state) {
  (void)state;
  struct nvlar_tuning_table table, other;
  struct warnings w = {0};
  size_t size = 300 * 32;
  char *text = malloc(size);
  text[0] = '\0';
  for (int i = 0; i < 300; i++) strcat(text, "nvlar 0-1K * * oneshot\n");
  assert_int_equal(nvlar_tuning_parse(text, "t", &table, collect, &w), NVLAR_TUNING_MAX_ROWS);
  assert_int_equal(w.count, 300 - NVLAR_TUNING_MAX_ROWS);
  free(text);
  /* An empty table is valid: nothing matches. */
  assert_int_equal(nvlar_tuning_parse("", "t", &table, collect, &w), 0);
  assert_null(nvlar_tuning_find_kernel(&table, 8, 2, 90, 64));
  /* Equal rows give equal hashes (comments and layout do not count); others differ. */
  nvlar_tuning_parse("nvlar 0-1K * * oneshot\n", "a", &table, NULL, NULL);
  nvlar_tuning_parse("\n# x\nnvlar   0-1K  *  *  oneshot  # y\n", "b", &other, NULL, NULL);
  assert_int_equal(table.hash, other.hash);
  nvlar_tuning_parse("nvlar 0-2K * * oneshot\n", "c", &other, NULL, NULL);
  assert_int_not_equal(table.hash, other.hash);
}

static void test_first_match_wins(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  nvlar_tuning_parse("nvlar 0-1M * * twoshot\n"
                     "nvlar 0-1K * * oneshot\n"
                     "nccl allreduce 0-inf * * tree simple\n"
                     "nccl allreduce 0-1K * * ring ll\n",
                     "t", &table, NULL, NULL);
  assert_int_equal(nvlar_tuning_find_kernel(&table, 512, 8, 90, 64)->kernel, NVLAR_ALGO_TWOSHOT);
  assert_int_equal(nvlar_tuning_find_nccl(&table, NVLAR_FUNC_ALLREDUCE, 512, 8, 1, 90)->algo, NVLAR_ALGO_TREE);
  assert_null(nvlar_tuning_find_nccl(&table, NVLAR_FUNC_ALLGATHER, 512, 8, 1, 90));
  /* A row for one architecture: only that one, never an unknown one (0). */
  nvlar_tuning_parse("nccl allgather 0-1M 2 1 ring ll128 arch=sm90\n"
                     "nccl allgather 0-inf * * ring simple\n",
                     "t", &table, NULL, NULL);
  assert_int_equal(nvlar_tuning_find_nccl(&table, NVLAR_FUNC_ALLGATHER, 512, 2, 1, 90)->proto, NVLAR_PROTO_LL128);
  assert_int_equal(nvlar_tuning_find_nccl(&table, NVLAR_FUNC_ALLGATHER, 512, 2, 1, 100)->proto, NVLAR_PROTO_SIMPLE);
  assert_int_equal(nvlar_tuning_find_nccl(&table, NVLAR_FUNC_ALLGATHER, 512, 2, 1, 0)->proto, NVLAR_PROTO_SIMPLE);
  assert_null(nvlar_tuning_find_kernel(&table, (2 << 20), 8, 90, 64));
}

/* budget=R: a row serves only communicators whose CTA limit (NCCL's maxCTAs, agreed by the
 * ranks) is within R; rows without it serve every budget; first match wins as ever. */
static void test_budget_rows(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  assert_int_equal(nvlar_tuning_parse("nvlar 16M-inf 2 * nccl budget=1-8\n"
                                      "nvlar 16M-inf 2 * cetwoshot budget=9-16 ctas=8\n"
                                      "nvlar 16M-inf 2 * tmapush ctas=16 budget=17-*\n"
                                      "nvlar 0-inf 2 * pushtwoshot budget=*\n"
                                      "nvlar 0-inf 4 * twoshot budget=24\n",
                                      "t", &table, collect, &w),
                   5);
  assert_int_equal(w.count, 0);
  assert_int_equal(table.rows[0].min_budget, 1);
  assert_int_equal(table.rows[0].max_budget, 8);
  assert_int_equal(table.rows[1].count, 8);
  assert_int_equal(table.rows[2].count, 16);
  assert_int_equal(table.rows[2].max_budget, NVLAR_TUNING_ANY_BUDGET);
  assert_int_equal(table.rows[3].min_budget, 1);
  assert_int_equal(table.rows[4].min_budget, 24);
  assert_int_equal(table.rows[4].max_budget, 24);
  const uint64_t big = 64u << 20;
  assert_int_equal(nvlar_tuning_find_kernel(&table, big, 2, 90, 1)->kernel, NVLAR_ALGO_NCCL);
  assert_int_equal(nvlar_tuning_find_kernel(&table, big, 2, 90, 8)->kernel, NVLAR_ALGO_NCCL);
  assert_int_equal(nvlar_tuning_find_kernel(&table, big, 2, 90, 9)->kernel, NVLAR_ALGO_CETWOSHOT);
  assert_int_equal(nvlar_tuning_find_kernel(&table, big, 2, 90, 16)->kernel, NVLAR_ALGO_CETWOSHOT);
  assert_int_equal(nvlar_tuning_find_kernel(&table, big, 2, 90, 17)->kernel, NVLAR_ALGO_TMA_PUSH);
  assert_int_equal(nvlar_tuning_find_kernel(&table, big, 2, 90, 64)->kernel, NVLAR_ALGO_TMA_PUSH);
  assert_int_equal(nvlar_tuning_find_kernel(&table, 1u << 20, 2, 90, 8)->kernel,
                   NVLAR_ALGO_PUSH_TWOSHOT);
  assert_null(nvlar_tuning_find_kernel(&table, 1u << 20, 4, 90, 16));
  assert_int_equal(nvlar_tuning_find_kernel(&table, 1u << 20, 4, 90, 24)->kernel, NVLAR_ALGO_TWOSHOT);
  /* The budget is part of what a row means: ranks with other budget ranges disagree. */
  struct nvlar_tuning_table other;
  nvlar_tuning_parse("nvlar 16M-inf 2 * nccl budget=1-8\n", "a", &table, NULL, NULL);
  nvlar_tuning_parse("nvlar 16M-inf 2 * nccl budget=1-16\n", "b", &other, NULL, NULL);
  assert_int_not_equal(table.hash, other.hash);
  nvlar_tuning_parse("nvlar 16M-inf 2 * nccl\n", "a", &table, NULL, NULL);
  nvlar_tuning_parse("nvlar 16M-inf 2 * nccl budget=*\n", "b", &other, NULL, NULL);
  assert_int_equal(table.hash, other.hash);
}

static void test_builtin_parses(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  assert_true(nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &table, collect, &w) > 0);
  assert_int_equal(w.count, 0);
}

/* Fields split at any run of spaces, tabs and carriage returns (a file written on Windows),
 * and the splitter keeps no state between lines or between tables. */
static void test_field_separators(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  assert_int_equal(nvlar_tuning_parse("  nvlar\t0-1K \t \r*\t*  oneshot\r\n"
                                      "\tnccl allreduce 0-1K * * ring ll\t\r\n",
                                      "t", &table, collect, &w), 2);
  assert_int_equal(w.count, 0);
  assert_int_equal(table.rows[0].kernel, NVLAR_ALGO_ONESHOT);
  assert_int_equal(table.rows[1].proto, NVLAR_PROTO_LL);
  /* Ten fields: the tenth is counted, not stored. */
  assert_int_equal(nvlar_tuning_parse("nccl allreduce 0-1K * * ring ll channels=4 arch=90 x\n", "t",
                                      &table, collect, &w), 0);
  assert_string_equal(w.last, "too many fields");
}

/* A NUL byte ends no line: its line is malformed, and the lines after it are read. */
static void test_parse_nul_byte(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  static const char text[] = "nvlar 0-1K * * oneshot\n"
                             "nvlar 1K-2K * * push\0nccl\n"
                             "# a comment\0with a NUL\n"
                             "nvlar 2K-4K * * twoshot\n";
  assert_int_equal(nvlar_tuning_parse_bytes(text, sizeof(text) - 1, "t", &table, collect, &w), 2);
  assert_int_equal(w.count, 2);
  assert_int_equal(w.lines[0], 2);
  assert_int_equal(w.lines[1], 3);
  assert_non_null(strstr(w.last, "NUL byte"));
  assert_int_equal(table.rows[1].line, 4);
  assert_int_equal(table.rows[1].kernel, NVLAR_ALGO_TWOSHOT);
  /* As a C string, the same text ends at its first NUL: "push" makes a row, and nothing after
   * it is seen. */
  assert_int_equal(nvlar_tuning_parse(text, "t", &table, NULL, NULL), 2);
  assert_int_equal(table.rows[1].kernel, NVLAR_ALGO_PUSH);
}

static void remember_source(void *ctx, const char *source, int line, const char *why) {
  (void)line, (void)why;
  snprintf(ctx, 256, "%s", source);
}

/* The source in messages is quoted: a path's control bytes cannot forge a log line. */
static void test_source_is_quoted(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  char seen[256] = "";
  nvlar_tuning_parse("bad row\n", "/tmp/a\nNVLAR WARN forged\x1b[2J\"", &table, remember_source,
                     seen);
  assert_string_equal(table.source, "/tmp/a\\x0aNVLAR WARN forged\\x1b[2J\\\"");
  assert_string_equal(seen, table.source);
}

/* ---- the table file */

static char scratch_dir[] = "/tmp/nvlar-table-files-XXXXXX";

static int make_scratch_dir(void **state) {
  (void)state;
  return mkdtemp(scratch_dir) != NULL ? 0 : -1;
}

static int remove_scratch_dir(void **state) {
  (void)state;
  char command[128];
  snprintf(command, sizeof(command), "rm -rf %s", scratch_dir);
  return system(command) == 0 ? 0 : -1;
}

static const char *scratch_path(const char *name, char *path, size_t size) {
  snprintf(path, size, "%s/%s", scratch_dir, name);
  return path;
}

static const char *write_scratch(const char *name, const char *text, size_t length, char *path,
                                 size_t size) {
  FILE *file = fopen(scratch_path(name, path, size), "w");
  assert_non_null(file);
  assert_int_equal(fwrite(text, 1, length, file), length);
  assert_int_equal(fclose(file), 0);
  return path;
}

static uint64_t builtin_hash(void) {
  struct nvlar_tuning_table table;
  nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &table, NULL, NULL);
  return table.hash;
}

/* Loads `path`; asserts that the file was refused for `reason` and the built-in table came
 * instead, and that it took less than a second (nothing waits on a FIFO or a device). */
static void refused(const char *path, const char *reason) {
  struct nvlar_tuning_table table;
  char why[192] = "";
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  assert_false(nvlar_tuning_load_file(path, &table, NULL, NULL, why, sizeof(why)));
  clock_gettime(CLOCK_MONOTONIC, &end);
  assert_true(end.tv_sec - start.tv_sec < 2);
  if (strstr(why, reason) == NULL) fail_msg("%s: \"%s\", expected \"%s\"", path, why, reason);
  assert_string_equal(table.source, "built-in");
  assert_int_equal(table.hash, builtin_hash());
}

static void test_file_used(void **state) {
  (void)state;
  char path[256];
  const char text[] = "nvlar 0-1K * * oneshot\nbad row\n";
  write_scratch("good", text, sizeof(text) - 1, path, sizeof(path));
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  char why[192] = "";
  assert_true(nvlar_tuning_load_file(path, &table, collect, &w, why, sizeof(why)));
  assert_int_equal(table.nrows, 1);
  assert_int_equal(w.count, 1); /* the bad row, skipped */
  assert_string_equal(table.source, path);
}

static void test_file_not_regular(void **state) {
  (void)state;
  char path[256];
  refused(scratch_dir, "is a directory, not a regular file");
  /* A FIFO with no writer: opening it must not wait for one. */
  assert_int_equal(mkfifo(scratch_path("fifo", path, sizeof(path)), 0600), 0);
  refused(path, "is a FIFO, not a regular file");
  refused("/dev/zero", "is a character device, not a regular file");
  refused(scratch_path("missing", path, sizeof(path)), "cannot be opened (No such file or directory)");
}

/* A regular file whose read fails: the test process's own memory at address 0. */
static void test_file_read_error(void **state) {
  (void)state;
  refused("/proc/self/mem", "cannot be read (Input/output error)");
}

static void test_file_too_large(void **state) {
  (void)state;
  char path[256];
  int fd = open(scratch_path("huge", path, sizeof(path)), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)NVLAR_TUNING_MAX_FILE_BYTES + 1), 0);
  close(fd);
  refused(path, "is larger than 16 MiB");
}

/* Rows, but none valid, or no row at all: the built-in table, not an empty one (which would
 * send every call to NCCL). The malformed lines are still reported. */
static void test_file_without_valid_row(void **state) {
  (void)state;
  char path[256];
  const char malformed[] = "nvlar 0-1K * *\nnvlar 0-1K * * threeshot\n";
  write_scratch("malformed", malformed, sizeof(malformed) - 1, path, sizeof(path));
  struct nvlar_tuning_table table;
  struct warnings w = {0};
  char why[192] = "";
  assert_false(nvlar_tuning_load_file(path, &table, collect, &w, why, sizeof(why)));
  assert_string_equal(why, "has no valid row");
  assert_int_equal(w.count, 2);
  assert_int_equal(table.hash, builtin_hash());
  write_scratch("empty", "# only a comment\n", 17, path, sizeof(path));
  refused(path, "has no valid row");
  const char nul[] = "nvlar 0-1K * * oneshot\0\n";
  write_scratch("nul", nul, sizeof(nul) - 1, path, sizeof(path));
  refused(path, "has no valid row");
}

/* nvlar-table reads files as the library does: what the library refuses, it refuses (exit 1,
 * the reason), and a file of more than 1 MiB is read whole. */
static void test_nvlar_table_tool(void **state) {
  (void)state;
  char path[256], output[8192];
  char *argv[] = {NVLAR_TEST_NVLAR_TABLE, scratch_dir, NULL};
  const char *env[] = {NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 1);
  assert_non_null(strstr(output, "is a directory, not a regular file; nvlar would use its built-in table"));
  scratch_path("fifo", path, sizeof(path)); /* made by test_file_not_regular */
  argv[1] = path;
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 1);
  assert_non_null(strstr(output, "is a FIFO"));
  /* 2 MiB of comments, then a row: the row is read. */
  size_t padding = (size_t)2 << 20;
  const char row[] = "nvlar 0-1K * * oneshot\n";
  char *text = malloc(padding + sizeof(row));
  assert_non_null(text);
  for (size_t i = 0; i < padding; i += 64) {
    memset(text + i, ' ', 64);
    text[i] = '#';
    text[i + 63] = '\n';
  }
  memcpy(text + padding, row, sizeof(row));
  write_scratch("long", text, padding + sizeof(row) - 1, path, sizeof(path));
  argv[1] = path;
  free(text);
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  assert_non_null(strstr(output, "line 32769: nvlar"));
  assert_non_null(strstr(output, "1 rows, 0 malformed lines"));
}

/* ---- the plugin, through dlopen as NCCL loads it */

static const char *plugin_table =
    "nccl allreduce 0-64K * 1 ring ll channels=4\n"
    "nccl allreduce 64K-inf * * tree simple\n"
    "nccl reducescatter 0-inf * * collnet_direct simple\n"
    "nccl broadcast 0-inf * * tree ll arch=sm10\n" /* no GPU has it: never applies */
    "nccl * 0-inf * * ring ll128\n";

static void *plugin;
static int log_lines, decision_lines;

static void logger(nvlar_nccl_log_level level, unsigned long flags, const char *file, int line,
                   const char *fmt, ...) {
  (void)flags, (void)file, (void)line;
  if (strncmp(fmt, "TUNER/nvlar: ", 13) == 0) log_lines++;
  if (level == NVLAR_NCCL_LOG_INFO && strncmp(fmt, "TUNER/nvlar: line ", 18) == 0) decision_lines++;
}

static int open_plugin(void **state) {
  (void)state;
  char path[] = "/tmp/nvlar-tuner-test-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0 || write(fd, plugin_table, strlen(plugin_table)) != (ssize_t)strlen(plugin_table)) return -1;
  close(fd);
  setenv("NVLAR_TUNING_FILE", path, 1); /* read once, at the plugin's first init */
  unsetenv("NCCL_ALGO");
  unsetenv("NCCL_PROTO");
  plugin = dlopen(NVLAR_TEST_LIBNVLAR, RTLD_NOW | RTLD_LOCAL);
  return plugin != NULL ? 0 : -1;
}

/* A cost table as NCCL gives it: every entry usable (1.0) except the marked ones. */
static void fresh_costs(float costs[NVLAR_NUM_ALGORITHMS][NVLAR_NUM_PROTOCOLS]) {
  for (int a = 0; a < NVLAR_NUM_ALGORITHMS; a++) {
    for (int p = 0; p < NVLAR_NUM_PROTOCOLS; p++) costs[a][p] = 1.0f;
  }
  costs[NVLAR_ALGO_COLLNET_DIRECT][NVLAR_PROTO_SIMPLE] = NVLAR_ALGO_PROTO_IGNORE;
}

static int zeros(float costs[NVLAR_NUM_ALGORITHMS][NVLAR_NUM_PROTOCOLS], int *algo, int *proto) {
  int n = 0;
  for (int a = 0; a < NVLAR_NUM_ALGORITHMS; a++) {
    for (int p = 0; p < NVLAR_NUM_PROTOCOLS; p++) {
      if (costs[a][p] == 0.0f) {
        n++;
        *algo = a;
        *proto = p;
      }
    }
  }
  return n;
}

typedef ncclResult_t (*coll_info_fn)(void *, int, size_t, int, float **, int, int, int, int *);

/* What the plugin picks for one call: the (algo, proto) it zeroed and the channels. */
static int pick(coll_info_fn get, void *ctx, int coll, size_t bytes, int *algo, int *proto, int *channels) {
  float costs[NVLAR_NUM_ALGORITHMS][NVLAR_NUM_PROTOCOLS];
  fresh_costs(costs);
  *channels = 0;
  assert_int_equal(get(ctx, coll, bytes, 1, (float **)costs, NVLAR_NUM_ALGORITHMS,
                       NVLAR_NUM_PROTOCOLS, 0, channels), ncclSuccess);
  assert_true(costs[NVLAR_ALGO_COLLNET_DIRECT][NVLAR_PROTO_SIMPLE] == NVLAR_ALGO_PROTO_IGNORE);
  *algo = *proto = -1;
  return zeros(costs, algo, proto);
}

static void check_v4_semantics(coll_info_fn get, void *ctx) {
  int algo, proto, channels;
  assert_int_equal(pick(get, ctx, NVLAR_FUNC_ALLREDUCE, 1024, &algo, &proto, &channels), 1);
  assert_int_equal(algo, NVLAR_ALGO_RING);
  assert_int_equal(proto, NVLAR_PROTO_LL);
  assert_int_equal(channels, 4);
  assert_int_equal(pick(get, ctx, NVLAR_FUNC_ALLREDUCE, 1 << 20, &algo, &proto, &channels), 1);
  assert_int_equal(algo, NVLAR_ALGO_TREE);
  assert_int_equal(proto, NVLAR_PROTO_SIMPLE);
  assert_int_equal(channels, 0);
  /* The row names an entry NCCL marked unusable: the table stays as it was. */
  assert_int_equal(pick(get, ctx, NVLAR_FUNC_REDUCESCATTER, 1024, &algo, &proto, &channels), 0);
  const int others[] = {NVLAR_FUNC_BROADCAST, NVLAR_FUNC_REDUCE, NVLAR_FUNC_ALLGATHER};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pick(get, ctx, others[i], 4096, &algo, &proto, &channels), 1);
    assert_int_equal(algo, NVLAR_ALGO_RING);
    assert_int_equal(proto, NVLAR_PROTO_LL128);
  }
}

static void test_plugin_v5(void **state) {
  (void)state;
  const nvlar_tuner_v5 *tuner = dlsym(plugin, "ncclTunerPlugin_v5");
  assert_non_null(tuner);
  assert_string_equal(tuner->name, "nvlar");
  void *ctx = NULL;
  nvlar_nvl_domain_info_v5 domains = {1, 8, 8};
  nvlar_tuner_constants_v5 constants;
  memset(&constants, 0, sizeof(constants));
  log_lines = 0;
  decision_lines = 0;
  assert_int_equal(tuner->init(&ctx, 77, 8, 1, logger, &domains, &constants), ncclSuccess);
  assert_non_null(ctx);
  assert_true(log_lines >= 1);
  check_v4_semantics(tuner->getCollInfo, ctx);
  /* One INFO line per row and outcome: rows 1 and 2 applied, row 3 not available here, row 4
   * (another architecture's) never matches, row 5 applied (to three collectives, broadcast
   * included); the same calls again add none. */
  assert_int_equal(decision_lines, 4);
  check_v4_semantics(tuner->getCollInfo, ctx);
  assert_int_equal(decision_lines, 4);
  assert_int_equal(tuner->finalize(ctx), ncclSuccess);
  /* Two nodes: the one-node row no longer matches, the catch-all does. */
  assert_int_equal(tuner->init(&ctx, 78, 16, 2, logger, &domains, &constants), ncclSuccess);
  int algo, proto, channels;
  assert_int_equal(pick(tuner->getCollInfo, ctx, NVLAR_FUNC_ALLREDUCE, 1024, &algo, &proto, &channels), 1);
  assert_int_equal(algo, NVLAR_ALGO_RING);
  assert_int_equal(proto, NVLAR_PROTO_LL128);
  assert_int_equal(tuner->finalize(ctx), ncclSuccess);
}

static void test_plugin_v4_v3(void **state) {
  (void)state;
  const nvlar_tuner_v4 *v4 = dlsym(plugin, "ncclTunerPlugin_v4");
  assert_non_null(v4);
  void *ctx = NULL;
  assert_int_equal(v4->init(8, 1, logger, &ctx), ncclSuccess);
  check_v4_semantics(v4->getCollInfo, ctx);
  assert_int_equal(v4->destroy(ctx), ncclSuccess);

  const nvlar_tuner_v3 *v3 = dlsym(plugin, "ncclTunerPlugin_v3");
  assert_non_null(v3);
  assert_int_equal(v3->init(8, 1, NULL, &ctx), ncclSuccess); /* no logger: still fine */
  float costs[NVLAR_NUM_ALGORITHMS][NVLAR_NUM_PROTOCOLS];
  fresh_costs(costs);
  int channels = 0, algo, proto;
  assert_int_equal(v3->getCollInfo(ctx, NVLAR_FUNC_ALLREDUCE, 1024, 1, (float **)costs,
                                   NVLAR_NUM_ALGORITHMS, NVLAR_NUM_PROTOCOLS, &channels), ncclSuccess);
  assert_int_equal(zeros(costs, &algo, &proto), 1);
  assert_int_equal(algo, NVLAR_ALGO_RING);
  assert_int_equal(channels, 4);
  assert_int_equal(v3->destroy(ctx), ncclSuccess);
}

static void test_plugin_v2(void **state) {
  (void)state;
  const nvlar_tuner_v2 *v2 = dlsym(plugin, "ncclTunerPlugin_v2");
  assert_non_null(v2);
  void *ctx = NULL;
  assert_int_equal(v2->init(8, 1, logger, &ctx), ncclSuccess);
  int algo = -1, proto = -1, channels = 0;
  assert_int_equal(v2->getCollInfo(ctx, NVLAR_FUNC_ALLREDUCE, 1024, 0, 0, 1, &algo, &proto, &channels), ncclSuccess);
  assert_int_equal(algo, NVLAR_ALGO_RING);
  assert_int_equal(proto, NVLAR_PROTO_LL);
  assert_int_equal(channels, 4);
  /* collnet without collnet support: undecided. */
  algo = proto = -1;
  assert_int_equal(v2->getCollInfo(ctx, NVLAR_FUNC_REDUCESCATTER, 1024, 0, 0, 1, &algo, &proto, &channels), ncclSuccess);
  assert_int_equal(algo, -1);
  assert_int_equal(v2->getCollInfo(ctx, NVLAR_FUNC_REDUCESCATTER, 1024, 1, 0, 1, &algo, &proto, &channels), ncclSuccess);
  assert_int_equal(algo, NVLAR_ALGO_COLLNET_DIRECT);
  assert_int_equal(v2->destroy(ctx), ncclSuccess);
}

/* With NCCL_ALGO or NCCL_PROTO set, the user's choice wins: the plugin changes nothing. */
static void test_steps_aside(void **state) {
  (void)state;
  const char *const variables[] = {"NCCL_ALGO", "NCCL_PROTO"};
  const nvlar_tuner_v4 *v4 = dlsym(plugin, "ncclTunerPlugin_v4");
  const nvlar_tuner_v2 *v2 = dlsym(plugin, "ncclTunerPlugin_v2");
  for (int i = 0; i < 2; i++) {
    setenv(variables[i], "ring", 1);
    void *ctx = NULL;
    assert_int_equal(v4->init(8, 1, logger, &ctx), ncclSuccess);
    int algo, proto, channels;
    assert_int_equal(pick(v4->getCollInfo, ctx, NVLAR_FUNC_ALLREDUCE, 1024, &algo, &proto, &channels), 0);
    assert_int_equal(channels, 0);
    v4->destroy(ctx);
    assert_int_equal(v2->init(8, 1, logger, &ctx), ncclSuccess);
    algo = proto = -1;
    v2->getCollInfo(ctx, NVLAR_FUNC_ALLREDUCE, 1024, 0, 0, 1, &algo, &proto, &channels);
    assert_int_equal(algo, -1);
    v2->destroy(ctx);
    unsetenv(variables[i]);
  }
}

int main(void) {
  const struct CMUnitTest parser[] = {
      cmocka_unit_test(test_parse_valid),
      cmocka_unit_test(test_parse_malformed),
      cmocka_unit_test(test_parse_limits),
      cmocka_unit_test(test_first_match_wins),
      cmocka_unit_test(test_budget_rows),
      cmocka_unit_test(test_builtin_parses),
      cmocka_unit_test(test_field_separators),
      cmocka_unit_test(test_parse_nul_byte),
      cmocka_unit_test(test_source_is_quoted),
  };
  const struct CMUnitTest files[] = {
      cmocka_unit_test(test_file_used),
      cmocka_unit_test(test_file_not_regular),
      cmocka_unit_test(test_file_read_error),
      cmocka_unit_test(test_file_too_large),
      cmocka_unit_test(test_file_without_valid_row),
      cmocka_unit_test(test_nvlar_table_tool),
  };
  const struct CMUnitTest plugin_tests[] = {
      cmocka_unit_test(test_plugin_v5),
      cmocka_unit_test(test_plugin_v4_v3),
      cmocka_unit_test(test_plugin_v2),
      cmocka_unit_test(test_steps_aside),
  };
  int failed = cmocka_run_group_tests(parser, NULL, NULL);
  failed += cmocka_run_group_tests(files, make_scratch_dir, remove_scratch_dir);
  return failed + cmocka_run_group_tests(plugin_tests, open_plugin, NULL);
}
