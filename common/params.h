/* nvlar's environment parameters: one X-macro table, read once.
 *
 * Every parameter is declared here with its type, default and the line of documentation that
 * docs/env.md repeats (nvlar-envdoc prints that file from this table, and a test checks that
 * the two agree). Values are read from the environment once, at the first call that needs any
 * of them, and never change afterwards.
 */
#ifndef NVLAR_PARAMS_H
#define NVLAR_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvlar_algos.h"

enum nvlar_param_type {
  NVLAR_PARAM_BOOL,   /* 0/1, also false/true, no/yes, off/on */
  NVLAR_PARAM_INT,    /* a decimal integer within [min, max] */
  NVLAR_PARAM_SIZE,   /* a byte count as bytes.h reads it: 65536, 64K, 64KiB (powers of 1024) */
  NVLAR_PARAM_CHOICE, /* one word of a |-separated list, case-insensitive; value = its index */
  NVLAR_PARAM_STRING, /* any text */
};

/* NVLAR_ALGO's words: "auto", every algorithm of nvlar_algos.h in the order of its rows, "nccl";
 * the value is the word's index (enum nvlar_forced_algo in selection.h follows the same list). */
#define NVLAR_ALGO_CHOICE(id, value, name, ...) name "|"
#define NVLAR_ALGO_CHOICES "auto|" NVLAR_ALGOS(NVLAR_ALGO_CHOICE) "nccl"

/* X(NAME, type, default, choices, min, max, multiple_of, doc)
 * NAME is the variable's name without the NVLAR_ prefix. The default is written as a user
 * would write it, and parsed by the same code as the user's value. A number must lie within
 * [min, max] and, where multiple_of is not 0, be a multiple of it: a value the code behind it
 * would refuse later (on every rank, at every communicator) is refused here, once, with a
 * WARN. */
#define NVLAR_PARAM_TABLE(X)                                                                  \
  X(DEBUG, NVLAR_PARAM_CHOICE, "WARN", "NONE|WARN|INFO|TRACE", 0, 0, 0,                       \
    "How much nvlar logs. WARN: problems and fall-backs to NCCL. INFO: also the NCCL "         \
    "library it forwards to and what it decides for each communicator. TRACE: also each "     \
    "call. Lines look like NCCL's: `host:pid:tid NVLAR INFO ...`.")                            \
  X(DEBUG_FILE, NVLAR_PARAM_STRING, "", NULL, 0, 0, 0,                                        \
    "Write log lines to this file instead of standard output. `%h` becomes the host name "    \
    "and `%p` the process id. If the file cannot be opened, nvlar logs to standard output.")  \
  X(NCCL_LIBRARY, NVLAR_PARAM_STRING, "", NULL, 0, 0, 0,                                      \
    "Path of the real `libnccl.so.2`. Used only when no NCCL is loaded in the process yet; "  \
    "then it is the only path tried, and if it cannot be loaded every NCCL call returns "     \
    "`ncclSystemError`. Unset: the `libnccl.so.2` that the build found (`meson setup` "       \
    "prints its path), then `libnccl.so.2` through the dynamic loader's search path.")     \
  X(DISABLE, NVLAR_PARAM_BOOL, "0", NULL, 0, 1, 0,                                            \
    "1: nvlar runs none of its own kernels: every call goes to NCCL unchanged. The rank "    \
    "still takes part in the first exchange of nvlar's setup (one small all-gather when a "  \
    "communicator is made), so that a rank with it and a rank without it agree to leave the " \
    "communicator on NCCL.")                                                                  \
  X(ALGO, NVLAR_PARAM_CHOICE, "auto", NVLAR_ALGO_CHOICES, 0, 0, 0,                            \
    "Force the all-reduce kernel for eligible calls (whatever their size), or `nccl` to "     \
    "route every call to NCCL. `tma` is the two-shot with bulk copies; on GPUs below "       \
    "compute capability 9.0 the plain two-shot runs instead. `cetwoshot` moves data between " \
    "GPUs with the copy engine and reduces on a few CTAs; `tmapush` is the push two-shot "  \
    "with bulk copies, for few CTAs (compute capability 9.0; below it the push two-shot "    \
    "runs instead). Neither is measured on NVLink yet, and no built-in table row picks "     \
    "them. `auto` follows the tuning table (docs/tuning.md gives the built-in one).")        \
  X(PDL, NVLAR_PARAM_BOOL, "1", NULL, 0, 1, 0,                                                \
    "1: launch nvlar kernels with programmatic dependent launch (compute capability 9.0 "    \
    "and up), so that a kernel's launch overlaps the end of the previous kernel on the "    \
    "stream; it waits for that kernel before reading anything. 0: ordinary launches.")     \
  X(PRIORITY, NVLAR_PARAM_CHOICE, "stream", "stream|high", 0, 0, 0,                           \
    "`stream`: nvlar's kernels run at the priority of the stream they are called on. `high`: " \
    "each is launched at the GPU's greatest stream priority, so that beside a model's "       \
    "kernels (a GEMM) its CTAs get the SMs that come free first instead of queueing behind "  \
    "the GEMM's; running CTAs are never preempted. Eager calls only: a CUDA graph's kernels " \
    "run at the priority of the stream the graph is launched on (unless it was instantiated " \
    "with cudaGraphInstantiateFlagUseNodePriority), so in graphs raise that stream's "        \
    "priority instead. Results are the same either way; ranks may differ.")                  \
  X(CTAS, NVLAR_PARAM_INT, "0", NULL, 0, 128 /* NVLAR_MAX_BLOCKS */, 0,                       \
    "CTAs per rank for every all-reduce that runs on nvlar (capped by the GPUs' SM count), "  \
    "for experiments and tuning. 0: a tuning row's count, else the algorithm's own rule. "    \
    "Every rank of a communicator must use the same value.")                                  \
  X(MAX_BYTES, NVLAR_PARAM_SIZE, "0", NULL, 0, INT64_MAX, 0,                                  \
    "All-reduces larger than this many bytes go to NCCL. 0: no limit beyond the table.")     \
  X(BUFFER_BYTES, NVLAR_PARAM_SIZE, "64M", NULL, 1 << 20, (int64_t)1 << 34, 256,              \
    "Staging buffer per communicator and GPU; larger messages stream through it in chunks. " \
    "A multiple of 256 bytes, as the kernels need; another value is refused with a WARN "   \
    "and the default used. Every rank of a communicator must use the same value.")          \
  X(TIMEOUT_MS, NVLAR_PARAM_INT, "600000", NULL, 1, 86400000, 0,                              \
    "How long an nvlar kernel waits for a peer before it gives up, records the error and "    \
    "exits; the communicator then reports `ncclSystemError`. The default matches PyTorch's "  \
    "default collective timeout (10 minutes).")                                               \
  X(DESTROY_TIMEOUT_MS, NVLAR_PARAM_INT, "30000", NULL, 1, 86400000, 0,                       \
    "After `ncclCommDestroy` or `ncclCommAbort`, how long nvlar's release thread waits for "  \
    "the other processes of the communicator to leave it too (destroy, abort or exit) "       \
    "before it frees the buffers they map; destroy and abort themselves never wait for "      \
    "them. A rank that has not left by then is named in a WARN, and that communicator's "     \
    "buffers stay allocated until the process ends.")                                         \
  X(TUNING_FILE, NVLAR_PARAM_STRING, "", NULL, 0, 0, 0,                                       \
    "A tuning table that replaces the built-in one (docs/tuning.md). Every rank must use "   \
    "the same table. A file that cannot be used gives a WARN saying why, then the built-in " \
    "table: one that cannot be opened or read, that is not a regular file (a directory, a "  \
    "FIFO or a device; nvlar never waits on one), that is larger than 16 MiB, or that has "  \
    "no valid row. Each malformed line (one holding a NUL byte included) is a WARN with its " \
    "line number, and is skipped.")                                                           \
  X(ALLOW_PCIE, NVLAR_PARAM_BOOL, "0", NULL, 0, 1, 0,                                         \
    "1: also run nvlar kernels where GPUs reach each other over PCIe rather than NVLink "     \
    "(or where NVML cannot tell). Every rank must agree.")                                         \
  X(TEST_SETUP_OOM, NVLAR_PARAM_CHOICE, "none", "none|buffers|scratch", 0, 0, 0,              \
    "For tests only: this rank's setup runs out of memory, for its buffers (it still joins "  \
    "the exchange, and every rank keeps the communicator on NCCL) or for the exchange "       \
    "itself (it cannot join: the communicator fails on every rank, with "                     \
    "`ncclSystemError`, once the others' exchange times out).")

enum nvlar_param_id {
#define NVLAR_PARAM_ID(name, type, def, choices, min, max, multiple_of, doc) NVLAR_P_##name,
  NVLAR_PARAM_TABLE(NVLAR_PARAM_ID)
#undef NVLAR_PARAM_ID
      NVLAR_PARAM_COUNT
};

struct nvlar_param_desc {
  const char *env_name; /* NVLAR_... */
  enum nvlar_param_type type;
  const char *default_text;
  const char *choices;
  int64_t min, max;
  int64_t multiple_of; /* 0: any number in [min, max] */
  const char *doc;
};

extern const struct nvlar_param_desc nvlar_param_descs[NVLAR_PARAM_COUNT];

struct nvlar_param_value {
  int64_t number;   /* BOOL, INT, SIZE, CHOICE (index) */
  const char *text; /* STRING; also the text the value was parsed from; never NULL */
  bool from_env;    /* false: the default */
  char error[256];  /* non-empty: the environment's value was rejected, default kept; the
                       value in it quoted (nvlar_quotable) and cut to 64 characters */
};

struct nvlar_params {
  struct nvlar_param_value values[NVLAR_PARAM_COUNT];
};

/* Parses one value. Returns false and writes a reason into `why` when the text is invalid. */
bool nvlar_param_parse(const struct nvlar_param_desc *desc, const char *text, int64_t *number,
                       char *why, size_t why_size);

/* Fills `params` from `lookup` (getenv in production; tests pass their own). Rejected values
 * keep the default and leave a message in `error`. Strings are copied. */
typedef const char *(*nvlar_env_lookup_fn)(const char *name, void *ctx);
void nvlar_params_load(struct nvlar_params *params, nvlar_env_lookup_fn lookup, void *ctx);
void nvlar_params_release(struct nvlar_params *params);

/* The process-wide values, read from the environment at the first call. */
const struct nvlar_params *nvlar_params(void);
int64_t nvlar_param_number(enum nvlar_param_id id);
const char *nvlar_param_text(enum nvlar_param_id id);
bool nvlar_param_is_set(enum nvlar_param_id id);

/* The word of a CHOICE parameter's value `index` (as the table spells it), or "?". */
const char *nvlar_param_choice_word(enum nvlar_param_id id, int64_t index, char *out,
                                    size_t out_size);

#endif
