/* The tuning table: one text format that drives both nvlar's own kernel choice (rows starting
 * with `nvlar`) and NCCL's algorithm, protocol and channel count for the collectives that stay
 * on NCCL (rows starting with `nccl`). docs/tuning.md describes the format.
 *
 * Rows are tried in file order and the first row that matches wins, so overlapping ranges are
 * allowed and earlier rows take precedence. A malformed row is reported (with its line number)
 * and skipped; the rest of the table still applies. */
#ifndef NVLAR_TUNING_TABLE_H
#define NVLAR_TUNING_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvlar_algos.h"

#define NVLAR_TUNING_MAX_ROWS 256
/* The largest table file read: 256 rows of at most 511 characters fit many times over; a
 * larger file is not a table. */
#define NVLAR_TUNING_MAX_FILE_BYTES ((size_t)16 << 20)

enum nvlar_row_kind { NVLAR_ROW_KERNEL, NVLAR_ROW_NCCL };
/* Where an all-reduce runs: an algorithm of nvlar_algos.h (enum nvlar_algo, its name the word)
 * or NCCL, this value beside them (the word "nccl"). An nvlar row's KERNEL, what NVLAR_ALGO
 * forces and the per-communicator call counters all take these values. */
enum { NVLAR_ALGO_NCCL = NVLAR_ALGO_COUNT };

/* The word of a KERNEL value, or "?". */
const char *nvlar_tuning_kernel_name(int kernel);

struct nvlar_tuning_row {
  int kind;                 /* enum nvlar_row_kind */
  int line;                 /* in the source, for messages */
  uint64_t min_bytes, max_bytes; /* inclusive */
  int min_ranks, max_ranks;
  int min_nodes, max_nodes; /* nccl rows */
  int arch;                 /* compute capability x 10 (90), 0 for any */
  int kernel;               /* nvlar rows: enum nvlar_algo or NVLAR_ALGO_NCCL */
  int collective;           /* nccl rows: NCCL's ncclFunc_t value, -1 for any */
  int algo, proto;          /* nccl rows: NCCL_ALGO_* / NCCL_PROTO_* values */
  int count;                /* CTAs (nvlar) or channels (nccl); 0: the default */
  int min_budget, max_budget; /* nvlar rows: the communicator CTA limits (NCCL's maxCTAs, the
                                 tightest of the ranks') that the row serves, inclusive; 1 and
                                 NVLAR_TUNING_ANY_BUDGET without budget=R */
};

/* The largest budget: what a row without budget=R, or with "budget=N-*", serves up to. */
#define NVLAR_TUNING_ANY_BUDGET (1 << 30)
/* The largest budget a row may name: NCCL caps maxCTAs at its 64 channels (MAXCHANNELS). */
#define NVLAR_TUNING_MAX_BUDGET 64

struct nvlar_tuning_table {
  int nrows;
  struct nvlar_tuning_row rows[NVLAR_TUNING_MAX_ROWS];
  uint64_t hash;            /* of the rows as parsed: ranks compare it at setup */
  char source[256];         /* "built-in" or the file's path, quoted for messages (its
                               non-printable bytes escaped, a long path cut: escape.h) */
};

/* Called for every malformed line: `line` is 1-based. */
typedef void (*nvlar_tuning_warn_fn)(void *ctx, const char *source, int line, const char *why);

/* Parses `text`, up to its terminating NUL; returns how many rows were kept. */
int nvlar_tuning_parse(const char *text, const char *source, struct nvlar_tuning_table *table,
                       nvlar_tuning_warn_fn warn, void *ctx);

/* Parses `length` bytes of `text`, which may hold NUL bytes: a line that does is malformed
 * (a NUL ends no line, so nothing after it goes unread). Returns how many rows were kept. */
int nvlar_tuning_parse_bytes(const char *text, size_t length, const char *source,
                             struct nvlar_tuning_table *table, nvlar_tuning_warn_fn warn,
                             void *ctx);

/* Reads and parses the table file `path` as NVLAR_TUNING_FILE is read, malformed lines
 * reported through `warn`. Returns true when `table` holds the file's rows. Returns false, with
 * `table` holding the built-in table and `why` saying why, when the file cannot be used: it
 * cannot be opened or read; it is not a regular file (it is opened without blocking and
 * refused after fstat, so that a FIFO or a device never stalls the first init); it is larger
 * than NVLAR_TUNING_MAX_FILE_BYTES; or not one of its lines is a valid row (a file of
 * malformed rows, or an empty one, would leave every call on NCCL unnoticed). */
bool nvlar_tuning_load_file(const char *path, struct nvlar_tuning_table *table,
                            nvlar_tuning_warn_fn warn, void *ctx, char *why, size_t why_size);

/* The built-in table's text (provisional thresholds; docs/tuning.md). */
extern const char nvlar_tuning_builtin[];

/* The first nvlar row matching, or NULL. `budget`: the communicator's CTA limit (NCCL's
 * maxCTAs as nvlar agreed it at setup, the same on every rank). */
const struct nvlar_tuning_row *nvlar_tuning_find_kernel(const struct nvlar_tuning_table *table,
                                                        uint64_t bytes, int nranks, int arch,
                                                        int budget);

/* The first nccl row matching, or NULL. `arch`: the GPU's compute capability x 10, 0 if
 * unknown (then only rows for any architecture match). */
const struct nvlar_tuning_row *nvlar_tuning_find_nccl(const struct nvlar_tuning_table *table,
                                                      int collective, uint64_t bytes, int nranks,
                                                      int nnodes, int arch);

/* The process-wide table: NVLAR_TUNING_FILE if set and usable (nvlar_tuning_load_file; a
 * WARN otherwise, then the built-in table), read once. Never NULL. */
const struct nvlar_tuning_table *nvlar_tuning_table(void);

/* Names used by the format, for messages and tools. */
const char *nvlar_tuning_algo_name(int algo);
/* "allreduce", ... for NCCL's ncclFunc_t value, "*" for -1 (any), "?" otherwise. */
const char *nvlar_tuning_collective_name(int collective);
const char *nvlar_tuning_proto_name(int proto);

#endif
