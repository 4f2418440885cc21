#include "tuning_table.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "escape.h"
#include "log.h"
#include "params.h"

/* 2 ranks on sm_90 within a CTA budget: the rows that keep a limited job from running slower under
 * nvlar than under NCCL with the same limit, by construction (nvlar only where its kernel on the
 * budget's fewest CTAs beat NCCL unlimited, in November's two-H200 sweeps; docs/tuning.md, "Rows
 * for a CTA budget"). They come first: the first matching row wins.
 * 2 ranks on sm_90: measured on two H200s (docs/tuning.md, docs/results.md): nvlar's rows by
 * nvlar-bench and scripts/tune, the nccl rows by scripts/tune --nccl-tests, each kept only where
 * two separate checks through the plugin confirmed it. Other rank counts: provisional, from
 * peers' published thresholds and the emulated measurements of docs/results.md (push rows: where
 * the push one-shot beat the pull one-shot with 2 to 8 emulated ranks on an H100); no nccl rows
 * there: without measurements nvlar leaves NCCL's own choice alone. */
const char nvlar_tuning_builtin[] =
    "# nvlar built-in tuning table\n"
    "# 2 ranks on sm_90 within a CTA budget below 64 (NCCL_MAX_CTAS, maxCTAs): nvlar only up to\n"
    "# the sizes where, on two H200s, its kernel on the budget's fewest CTAs beat NCCL with all its\n"
    "# channels (docs/results.md, \"Within a CTA budget\"); NCCL, within the same budget, above\n"
    "nvlar 0-8K      2   sm90 push  budget=1-7\n"
    "nvlar 0-64K     2   sm90 push  budget=8-15\n"
    "nvlar 0-128K    2   sm90 push  budget=16-31\n"
    "nvlar 0-512K    2   sm90 push  budget=32-63\n"
    "nvlar 0-inf     2   sm90 nccl  budget=1-63\n"
    "# 2 ranks on sm_90: measured on two H200s with NVLink (docs/results.md, \"Two H200s\")\n"
    "nvlar 0-1M      2   sm90 push\n"
    "nvlar 1M-inf    2   sm90 pushtwoshot\n"
    "# the rest: from ranks emulated on one H100, not yet measured on NVLink\n"
    "nvlar 0-256K    2-4 * push\n"
    "nvlar 0-128K    5   * push\n"
    "nvlar 0-64K     6-8 * push\n"
    "nvlar 0-512K    2-4 * oneshot\n"
    "nvlar 0-256K    5-8 * oneshot\n"
    "nvlar 0-16M     2-8 * twoshot\n"
    "nvlar 16M-inf   *   * nccl\n"
    "# NCCL's own collectives, 2 ranks on one node, sm_90: measured with nccl-tests on two H200s\n"
    "# (NVLink, NCCL 2.28.9; docs/results.md, \"The tuner plugin on two H200s\")\n"
    "nccl allreduce 1048577-2M     2 1 ring ll    channels=32 arch=sm90\n"
    "nccl allreduce 2097153-4M     2 1 ring ll128 channels=32 arch=sm90\n"
    "nccl allreduce 536870913-inf  2 1 tree simple arch=sm90\n"
    "nccl allgather 1048577-8M     2 1 ring ll128 channels=32 arch=sm90\n"
    "nccl broadcast 1048577-2M     2 1 ring ll    channels=32 arch=sm90\n"
    "nccl broadcast 2097153-4M     2 1 ring ll128 arch=sm90\n";

static const char *const algo_names[] = {"tree", "ring", "collnet_direct", "collnet_chain",
                                         "nvls", "nvls_tree", "pat"};
static const char *const proto_names[] = {"ll", "ll128", "simple"};
/* ncclFunc_t: Broadcast 0, Reduce 1, AllGather 2, ReduceScatter 3, AllReduce 4. */
static const char *const collective_names[] = {"broadcast", "reduce", "allgather",
                                               "reducescatter", "allreduce"};
/* The KERNEL words, listed for messages: "oneshot, twoshot, ..., nccl". */
#define KERNEL_WORD(id, value, name, ...) name ", "
#define KERNEL_WORDS NVLAR_ALGOS(KERNEL_WORD) "nccl"

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *nvlar_tuning_algo_name(int algo) {
  return algo >= 0 && algo < COUNT_OF(algo_names) ? algo_names[algo] : "?";
}
const char *nvlar_tuning_collective_name(int collective) {
  if (collective == -1) return "*";
  return collective >= 0 && collective < COUNT_OF(collective_names) ? collective_names[collective] : "?";
}
const char *nvlar_tuning_kernel_name(int kernel) {
  return kernel == NVLAR_ALGO_NCCL ? "nccl" : nvlar_algo_name(kernel);
}
const char *nvlar_tuning_proto_name(int proto) {
  return proto >= 0 && proto < COUNT_OF(proto_names) ? proto_names[proto] : "?";
}

static int find_word(const char *const *words, int n, const char *word) {
  for (int i = 0; i < n; i++) {
    if (strcasecmp(words[i], word) == 0) return i;
  }
  return -1;
}

/* A KERNEL value, or -1. */
static int find_kernel(const char *word) {
  return strcasecmp(word, "nccl") == 0 ? NVLAR_ALGO_NCCL : nvlar_algo_from_name(word);
}

/* A byte count (bytes.h: 65536, 64K, 64KiB, ...); "inf" is the largest. */
static bool parse_bytes(const char *text, uint64_t *value) {
  if (strcasecmp(text, "inf") == 0) {
    *value = UINT64_MAX;
    return true;
  }
  return nvlar_parse_bytes(text, value) == NULL;
}

/* The message of a BYTES field that is not "MIN-MAX" of byte counts. */
#define BAD_BYTE_RANGE "bad byte range (MIN-MAX in bytes, K, M, G, KiB, MiB, GiB; MAX may be inf)"

/* "MIN-MAX" of byte counts. */
static bool parse_byte_range(char *text, uint64_t *min, uint64_t *max) {
  char *dash = strchr(text, '-');
  if (dash == NULL) return false;
  *dash = '\0';
  return parse_bytes(text, min) && parse_bytes(dash + 1, max);
}

/* "*", "N", "N-M" or "N-*" of small positive integers. */
static bool parse_int_range(char *text, int *min, int *max) {
  if (strcmp(text, "*") == 0) {
    *min = 1;
    *max = 1 << 30;
    return true;
  }
  char *end = NULL;
  long low = strtol(text, &end, 10), high = low;
  if (end == text || low < 1 || low > (1 << 30)) return false;
  if (*end == '-' && strcmp(end + 1, "*") == 0) {
    high = 1 << 30; /* "N-*": N or more */
    end += 2;
  } else if (*end == '-') {
    char *start = end + 1;
    high = strtol(start, &end, 10);
    if (end == start || high < 1 || high > (1 << 30)) return false;
  }
  if (*end != '\0') return false;
  *min = (int)low;
  *max = (int)high;
  return true;
}

static bool parse_arch(const char *text, int *arch) {
  if (strcmp(text, "*") == 0) {
    *arch = 0;
    return true;
  }
  if (strncasecmp(text, "sm", 2) == 0) text += 2;
  if (*text == '_') text++;
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 10 || value > 1000) return false;
  *arch = (int)value;
  return true;
}

/* "name=N" with N in [1, limit]. */
static bool parse_count(const char *text, const char *name, int limit, int *count) {
  size_t length = strlen(name);
  if (strncasecmp(text, name, length) != 0 || text[length] != '=') return false;
  char *end = NULL;
  long value = strtol(text + length + 1, &end, 10);
  if (end == text + length + 1 || *end != '\0' || value < 1 || value > limit) return false;
  *count = (int)value;
  return true;
}

static uint64_t hash_bytes(uint64_t hash, const void *data, size_t size) {
  const unsigned char *bytes = data;
  for (size_t i = 0; i < size; i++) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  return hash;
}

/* "budget=R", R written as a rank range is ("*", "N", "N-M", "N-*"), N and M at most
 * NVLAR_TUNING_MAX_BUDGET. */
static bool parse_budget(char *text, int *min, int *max) {
  if (strncasecmp(text, "budget=", 7) != 0) return false;
  char *range = text + 7;
  bool open_ended = strcmp(range, "*") == 0 ||
                    (strlen(range) >= 2 && strcmp(range + strlen(range) - 2, "-*") == 0);
  if (!parse_int_range(range, min, max)) return false;
  if (*min > NVLAR_TUNING_MAX_BUDGET) return false;
  return open_ended || *max <= NVLAR_TUNING_MAX_BUDGET;
}

/* The longest row: nccl COLLECTIVE BYTES RANKS NODES ALGO PROTO channels=N arch=A. */
#define MAX_FIELDS 9

/* Parses one line's fields into `row`; returns NULL or the reason it is malformed. */
static const char *parse_row(char **fields, int n, struct nvlar_tuning_row *row) {
  if (strcasecmp(fields[0], "nvlar") == 0) {
    row->kind = NVLAR_ROW_KERNEL;
    if (n < 5 || n > 7) {
      return "an nvlar row has 4 to 6 fields: BYTES RANKS ARCH KERNEL [ctas=N] [budget=R]";
    }
    if (!parse_byte_range(fields[1], &row->min_bytes, &row->max_bytes)) return BAD_BYTE_RANGE;
    if (!parse_int_range(fields[2], &row->min_ranks, &row->max_ranks)) return "bad rank range (*, N or N-M)";
    if (!parse_arch(fields[3], &row->arch)) return "bad architecture (*, sm90, 90)";
    row->kernel = find_kernel(fields[4]);
    if (row->kernel < 0) return "bad kernel (" KERNEL_WORDS ")";
    row->min_budget = 1;
    row->max_budget = NVLAR_TUNING_ANY_BUDGET;
    /* The optional fields, in either order, each at most once. */
    bool have_ctas = false, have_budget = false;
    for (int i = 5; i < n; i++) {
      if (strncasecmp(fields[i], "ctas=", 5) == 0 && !have_ctas) {
        have_ctas = true;
        if (!parse_count(fields[i], "ctas", 128, &row->count)) return "bad ctas=N (1 to 128)";
      } else if (strncasecmp(fields[i], "budget=", 7) == 0 && !have_budget) {
        have_budget = true;
        if (!parse_budget(fields[i], &row->min_budget, &row->max_budget)) {
          return "bad budget=R (*, N, N-M or N-*; N and M 1 to 64)";
        }
      } else {
        return "after KERNEL an nvlar row takes ctas=N and budget=R, each at most once";
      }
    }
    if (row->min_budget > row->max_budget) return "empty budget range";
  } else if (strcasecmp(fields[0], "nccl") == 0) {
    row->kind = NVLAR_ROW_NCCL;
    if (n < 7 || n > 9) {
      return "an nccl row has 6 to 8 fields: COLLECTIVE BYTES RANKS NODES ALGO PROTO [channels=N] "
             "[arch=A]";
    }
    row->collective = strcmp(fields[1], "*") == 0 ? -1 : find_word(collective_names, COUNT_OF(collective_names), fields[1]);
    if (row->collective < -1 || (row->collective == -1 && strcmp(fields[1], "*") != 0)) {
      return "bad collective (allreduce, allgather, reducescatter, broadcast, reduce, *)";
    }
    if (!parse_byte_range(fields[2], &row->min_bytes, &row->max_bytes)) return BAD_BYTE_RANGE;
    if (!parse_int_range(fields[3], &row->min_ranks, &row->max_ranks)) return "bad rank range (*, N or N-M)";
    if (!parse_int_range(fields[4], &row->min_nodes, &row->max_nodes)) return "bad node range (*, N or N-M)";
    row->algo = find_word(algo_names, COUNT_OF(algo_names), fields[5]);
    if (row->algo < 0) return "bad algorithm (tree, ring, collnet_direct, collnet_chain, nvls, nvls_tree, pat)";
    row->proto = find_word(proto_names, COUNT_OF(proto_names), fields[6]);
    if (row->proto < 0) return "bad protocol (ll, ll128, simple)";
    /* The optional fields, in either order, each at most once. */
    bool have_channels = false, have_arch = false;
    for (int i = 7; i < n; i++) {
      if (strncasecmp(fields[i], "arch=", 5) == 0 && !have_arch) {
        have_arch = true;
        if (!parse_arch(fields[i] + 5, &row->arch)) return "bad arch=A (*, sm90, 90)";
      } else if (strncasecmp(fields[i], "channels=", 9) == 0 && !have_channels) {
        have_channels = true;
        if (!parse_count(fields[i], "channels", 64, &row->count)) return "bad channels=N (1 to 64)";
      } else {
        return "after PROTO an nccl row takes channels=N and arch=A, each at most once";
      }
    }
  } else {
    return "a row starts with nvlar or nccl";
  }
  if (row->min_bytes > row->max_bytes) return "empty byte range (MIN > MAX)";
  if (row->min_ranks > row->max_ranks) return "empty rank range";
  if (row->kind == NVLAR_ROW_NCCL && row->min_nodes > row->max_nodes) return "empty node range";
  return NULL;
}

/* What separates fields. */
#define FIELD_SEPARATORS " \t\r"

/* Splits `line` in place into its fields, storing the first `max_fields` of them; returns how
 * many there are. Not strtok: its position lives in hidden state that every thread of the
 * process shares, and a library cannot know who else is tokenizing. */
static int split_fields(char *line, char **fields, int max_fields) {
  int n = 0;
  char *cursor = line;
  for (;;) {
    cursor += strspn(cursor, FIELD_SEPARATORS);
    if (*cursor == '\0') return n;
    if (n < max_fields) fields[n] = cursor;
    n++;
    cursor += strcspn(cursor, FIELD_SEPARATORS);
    if (*cursor != '\0') *cursor++ = '\0';
  }
}

/* The longest line kept whole; a longer one is malformed. */
#define MAX_LINE_LENGTH 511

/* One line (without its newline) into `row`: NULL when it is a row, "" when it holds none
 * (blank or comment), else the reason it is malformed. */
static const char *parse_line(const char *line, size_t length, struct nvlar_tuning_row *row) {
  /* A NUL byte is not text: it would hide the rest of the line from a parser of C strings,
   * so the line is refused rather than read in part. */
  if (memchr(line, '\0', length) != NULL) return "the line holds a NUL byte (the file is not text)";
  if (length > MAX_LINE_LENGTH) return "line longer than 511 characters";
  char buffer[MAX_LINE_LENGTH + 1];
  memcpy(buffer, line, length);
  buffer[length] = '\0';
  char *comment = strchr(buffer, '#');
  if (comment != NULL) *comment = '\0';
  char *fields[MAX_FIELDS];
  int n = split_fields(buffer, fields, MAX_FIELDS);
  if (n == 0) return "";
  if (n > MAX_FIELDS) return "too many fields";
  return parse_row(fields, n, row);
}

int nvlar_tuning_parse_bytes(const char *text, size_t length, const char *source,
                             struct nvlar_tuning_table *table, nvlar_tuning_warn_fn warn,
                             void *ctx) {
  memset(table, 0, sizeof(*table));
  /* Every message names the source as quoted here: a path is the user's bytes. */
  nvlar_quotable(source, table->source, sizeof(table->source));
  table->hash = 0xcbf29ce484222325ull;
  int line_number = 0;
  for (size_t offset = 0; offset < length;) {
    line_number++;
    const char *line = text + offset;
    const char *newline = memchr(line, '\n', length - offset);
    size_t line_length = newline != NULL ? (size_t)(newline - line) : length - offset;
    offset += line_length + (newline != NULL);
    struct nvlar_tuning_row row;
    memset(&row, 0, sizeof(row));
    row.line = line_number;
    const char *why = parse_line(line, line_length, &row);
    if (why != NULL && why[0] == '\0') continue;
    if (why == NULL && table->nrows == NVLAR_TUNING_MAX_ROWS) why = "more than 256 rows";
    if (why != NULL) {
      if (warn != NULL) warn(ctx, table->source, line_number, why);
      continue;
    }
    table->rows[table->nrows++] = row;
    row.line = 0; /* the hash covers what a row means, not where it stands */
    table->hash = hash_bytes(table->hash, &row, sizeof(row));
  }
  return table->nrows;
}

int nvlar_tuning_parse(const char *text, const char *source, struct nvlar_tuning_table *table,
                       nvlar_tuning_warn_fn warn, void *ctx) {
  return nvlar_tuning_parse_bytes(text, strlen(text), source, table, warn, ctx);
}

const struct nvlar_tuning_row *nvlar_tuning_find_kernel(const struct nvlar_tuning_table *table,
                                                        uint64_t bytes, int nranks, int arch,
                                                        int budget) {
  for (int i = 0; i < table->nrows; i++) {
    const struct nvlar_tuning_row *row = &table->rows[i];
    if (row->kind == NVLAR_ROW_KERNEL && bytes >= row->min_bytes && bytes <= row->max_bytes &&
        nranks >= row->min_ranks && nranks <= row->max_ranks && (row->arch == 0 || row->arch == arch) &&
        budget >= row->min_budget && budget <= row->max_budget) {
      return row;
    }
  }
  return NULL;
}

const struct nvlar_tuning_row *nvlar_tuning_find_nccl(const struct nvlar_tuning_table *table,
                                                      int collective, uint64_t bytes, int nranks,
                                                      int nnodes, int arch) {
  for (int i = 0; i < table->nrows; i++) {
    const struct nvlar_tuning_row *row = &table->rows[i];
    if (row->kind == NVLAR_ROW_NCCL && (row->collective == -1 || row->collective == collective) &&
        bytes >= row->min_bytes && bytes <= row->max_bytes && nranks >= row->min_ranks &&
        nranks <= row->max_ranks && nnodes >= row->min_nodes && nnodes <= row->max_nodes &&
        (row->arch == 0 || row->arch == arch)) {
      return row;
    }
  }
  return NULL;
}

static void warn_row(void *ctx, const char *source, int line, const char *why) {
  (void)ctx;
  NVLAR_WARN("tuning table %s, line %d: %s; row skipped", source, line, why);
}

/* What a file that is not a regular file is, for the message refusing it. */
static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* errno's text; strerror_r, as another thread may be formatting its own error. */
static const char *error_text(int error, char *buffer, size_t size) {
  return strerror_r(error, buffer, size);
}

/* The whole of the open file `fd`, NUL-terminated (*length without it), or NULL with the reason
 * in `why`. It reads to the end rather than trusting fstat's size: a file may change while it
 * is read, and it is refused if it grows past the limit. */
static char *read_to_end(int fd, size_t *length, char *why, size_t why_size) {
  size_t capacity = (size_t)1 << 16, used = 0;
  char *text = malloc(capacity);
  while (text != NULL) {
    if (used > NVLAR_TUNING_MAX_FILE_BYTES) {
      snprintf(why, why_size, "is larger than %zu MiB", NVLAR_TUNING_MAX_FILE_BYTES >> 20);
      free(text);
      return NULL;
    }
    if (used == capacity - 1) {
      char *bigger = realloc(text, capacity * 2);
      if (bigger == NULL) break;
      text = bigger;
      capacity *= 2;
    }
    ssize_t got = read(fd, text + used, capacity - 1 - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      char error[128];
      snprintf(why, why_size, "cannot be read (%s)", error_text(errno, error, sizeof(error)));
      free(text);
      return NULL;
    }
    if (got == 0) {
      text[used] = '\0';
      *length = used;
      return text;
    }
    used += (size_t)got;
  }
  free(text);
  snprintf(why, why_size, "does not fit in the memory left");
  return NULL;
}

/* The bytes of the table file `path`, or NULL with the reason in `why`. */
static char *read_table_file(const char *path, size_t *length, char *why, size_t why_size) {
  /* O_NONBLOCK: opening a FIFO that no one writes would wait for a writer, and a read of it
   * for data; nothing but a regular file is read, and for one O_NONBLOCK changes nothing. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  char error[128];
  if (fd < 0) {
    snprintf(why, why_size, "cannot be opened (%s)", error_text(errno, error, sizeof(error)));
    return NULL;
  }
  char *text = NULL;
  struct stat status;
  if (fstat(fd, &status) != 0) {
    snprintf(why, why_size, "cannot be examined (%s)", error_text(errno, error, sizeof(error)));
  } else if (!S_ISREG(status.st_mode)) {
    snprintf(why, why_size, "is %s, not a regular file", file_kind(status.st_mode));
  } else if ((uint64_t)status.st_size > NVLAR_TUNING_MAX_FILE_BYTES) {
    snprintf(why, why_size, "is larger than %zu MiB", NVLAR_TUNING_MAX_FILE_BYTES >> 20);
  } else {
    text = read_to_end(fd, length, why, why_size);
  }
  close(fd);
  return text;
}

bool nvlar_tuning_load_file(const char *path, struct nvlar_tuning_table *table,
                            nvlar_tuning_warn_fn warn, void *ctx, char *why, size_t why_size) {
  size_t length = 0;
  char *text = read_table_file(path, &length, why, why_size);
  if (text != NULL) {
    int rows = nvlar_tuning_parse_bytes(text, length, path, table, warn, ctx);
    free(text);
    if (rows > 0) return true;
    snprintf(why, why_size, "has no valid row");
  }
  nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", table, warn, ctx);
  return false;
}

static struct nvlar_tuning_table process_table;
static pthread_once_t process_table_once = PTHREAD_ONCE_INIT;

static void load_process_table(void) {
  const char *path = nvlar_param_text(NVLAR_P_TUNING_FILE);
  if (path[0] == '\0') {
    nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &process_table, warn_row, NULL);
    return;
  }
  char why[192], quoted[160];
  if (nvlar_tuning_load_file(path, &process_table, warn_row, NULL, why, sizeof(why))) {
    NVLAR_INFO("tuning table %s: %d rows", process_table.source, process_table.nrows);
    return;
  }
  NVLAR_WARN("NVLAR_TUNING_FILE=\"%s\" %s; using the built-in table",
             nvlar_quotable(path, quoted, sizeof(quoted)), why);
}

const struct nvlar_tuning_table *nvlar_tuning_table(void) {
  pthread_once(&process_table_once, load_process_table);
  return &process_table;
}
