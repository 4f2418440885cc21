/* The NCCL tuner plugin: for collectives that stay on NCCL, picks NCCL's algorithm, protocol
 * and channel count from the `nccl` rows of the tuning table.
 *
 * One version-neutral implementation (tuner_init, choose, tuner_finish); the exported structs
 * ncclTunerPlugin_v5 ... _v2 at the end are thin adapters, as NCCL loads the newest it finds.
 * Every callback returns ncclSuccess: an error from a tuner would fail the user's collective
 * (or communicator init), and a tuner can always decline by leaving NCCL's table alone. */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "export.h"
#include "tuner_abi.h"
#include "tuner_agreement.h"
#include "tuning_table.h"

#define LOG_PREFIX "TUNER/nvlar: "

/* Whether a context applies its rows (tuner_agreement.h). */
enum rows_state {
  ROWS_TRUSTED, /* no one can check: the plugin alone, or a single rank */
  ROWS_WAITING, /* for the communicator's setup to compare the ranks */
  ROWS_AGREED,  /* every rank has the same table and architecture */
  ROWS_DROPPED, /* they differ: no row applies, on any rank */
};

struct tuner_context {
  size_t nranks, nnodes;
  int device; /* NCCL inits a tuner on the communicator's GPU; -1: unknown */
  int arch; /* of that GPU; 0: unknown */
  atomic_int rows;          /* enum rows_state */
  struct tuner_context *next_waiting;
  nvlar_nccl_logger log;
  const struct nvlar_tuning_table *table;
  bool step_aside; /* NCCL_ALGO or NCCL_PROTO set: the user's choice wins */
  /* Rows whose decision (applied, or not available here) was logged at INFO: each once per
   * communicator, so the log says what the plugin did without a line per call. Atomic: NCCL
   * may ask from more than one thread. */
  atomic_bool row_logged[NVLAR_TUNING_MAX_ROWS][2];
};

/* Logs, once per row and outcome, that a row decided a call (`applied`) or named an
 * algorithm/protocol that NCCL does not offer here. */
static void note_decision(struct tuner_context *ctx, const struct nvlar_tuning_row *row, int coll,
                          size_t bytes, bool applied) {
  int index = (int)(row - ctx->table->rows);
  if (ctx->log == NULL || index < 0 || index >= NVLAR_TUNING_MAX_ROWS ||
      atomic_exchange(&ctx->row_logged[index][applied], true)) {
    return;
  }
  if (applied) {
    ctx->log(NVLAR_NCCL_LOG_INFO, NVLAR_NCCL_LOG_SUBSYS_TUNING, __FILE__, __LINE__,
             LOG_PREFIX "line %d: %s of %zu bytes (and the rest of the row's range) gets %s/%s, "
             "channels %s", row->line, nvlar_tuning_collective_name(coll), bytes,
             nvlar_tuning_algo_name(row->algo), nvlar_tuning_proto_name(row->proto),
             row->count > 0 ? "as the row says" : "as NCCL chooses");
  } else {
    ctx->log(NVLAR_NCCL_LOG_INFO, NVLAR_NCCL_LOG_SUBSYS_TUNING, __FILE__, __LINE__,
             LOG_PREFIX "line %d: %s/%s not available for %s here; NCCL decides", row->line,
             nvlar_tuning_algo_name(row->algo), nvlar_tuning_proto_name(row->proto),
             nvlar_tuning_collective_name(coll));
  }
}

/* Compute capability x 10 of the current GPU, or 0 if CUDA cannot say: then rows measured on a
 * given architecture (arch=A) do not apply, only rows for any. */
static int current_device_arch(int *device) {
  int major = 0, minor = 0;
  *device = -1;
  if (cudaGetDevice(device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, *device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, *device) != cudaSuccess) {
    (void)cudaGetLastError(); /* leave no sticky error for the application to find */
    return 0;
  }
  return major * 10 + minor;
}

/* ---- Agreement between ranks (tuner_agreement.h) */

static struct {
  pthread_mutex_t lock;
  atomic_bool interposing;
  struct tuner_context *waiting; /* newest first */
} agreement = {PTHREAD_MUTEX_INITIALIZER, false, NULL};

void nvlar_tuner_expect_agreement(void) { atomic_store(&agreement.interposing, true); }

static void start_waiting(struct tuner_context *ctx) {
  pthread_mutex_lock(&agreement.lock);
  atomic_store(&ctx->rows, ROWS_WAITING);
  ctx->next_waiting = agreement.waiting;
  agreement.waiting = ctx;
  pthread_mutex_unlock(&agreement.lock);
}

/* Caller holds the lock. */
static void stop_waiting_locked(struct tuner_context *ctx) {
  for (struct tuner_context **link = &agreement.waiting; *link != NULL; link = &(*link)->next_waiting) {
    if (*link == ctx) {
      *link = ctx->next_waiting;
      ctx->next_waiting = NULL;
      return;
    }
  }
}

void *nvlar_tuner_settle(int device, int nranks, int nnodes, bool agree) {
  pthread_mutex_lock(&agreement.lock);
  struct tuner_context *oldest = NULL;
  for (struct tuner_context *ctx = agreement.waiting; ctx != NULL; ctx = ctx->next_waiting) {
    if (ctx->device == device && ctx->nranks == (size_t)nranks && ctx->nnodes == (size_t)nnodes) {
      oldest = ctx;
    }
  }
  if (oldest != NULL) {
    stop_waiting_locked(oldest);
    atomic_store(&oldest->rows, agree ? ROWS_AGREED : ROWS_DROPPED);
  }
  pthread_mutex_unlock(&agreement.lock);
  if (oldest != NULL && oldest->log != NULL) {
    oldest->log(agree ? NVLAR_NCCL_LOG_INFO : NVLAR_NCCL_LOG_WARN, NVLAR_NCCL_LOG_SUBSYS_TUNING,
                __FILE__, __LINE__,
                agree ? LOG_PREFIX "every rank has the same table and GPU architecture: rows apply"
                      : LOG_PREFIX "the ranks differ in tuning table or GPU architecture: no row "
                                   "applies to this communicator, on any rank");
  }
  return oldest;
}

int nvlar_tuner_contexts_waiting(void) {
  pthread_mutex_lock(&agreement.lock);
  int count = 0;
  for (struct tuner_context *ctx = agreement.waiting; ctx != NULL; ctx = ctx->next_waiting) count++;
  pthread_mutex_unlock(&agreement.lock);
  return count;
}

static ncclResult_t tuner_init(size_t nranks, size_t nnodes, nvlar_nccl_logger log, void **context) {
  struct tuner_context *ctx = calloc(1, sizeof(*ctx));
  *context = ctx;
  if (ctx == NULL) {
    if (log != NULL) {
      log(NVLAR_NCCL_LOG_WARN, NVLAR_NCCL_LOG_SUBSYS_TUNING, __FILE__, __LINE__,
          LOG_PREFIX "out of memory; NCCL keeps its own choices");
    }
    return ncclSuccess;
  }
  ctx->nranks = nranks;
  ctx->nnodes = nnodes;
  ctx->log = log;
  ctx->arch = current_device_arch(&ctx->device);
  /* One rank always agrees with itself; otherwise wait for nvlar's setup when it is there. */
  atomic_init(&ctx->rows, ROWS_TRUSTED);
  if (nranks > 1 && atomic_load(&agreement.interposing)) start_waiting(ctx);
  ctx->table = nvlar_tuning_table();
  ctx->step_aside = getenv("NCCL_ALGO") != NULL || getenv("NCCL_PROTO") != NULL;
  int nccl_rows = 0;
  for (int i = 0; i < ctx->table->nrows; i++) nccl_rows += ctx->table->rows[i].kind == NVLAR_ROW_NCCL;
  if (log != NULL) {
    char arch[32] = "GPU architecture unknown";
    if (ctx->arch > 0) snprintf(arch, sizeof(arch), "sm_%d", ctx->arch);
    log(NVLAR_NCCL_LOG_INFO, NVLAR_NCCL_LOG_SUBSYS_INIT | NVLAR_NCCL_LOG_SUBSYS_TUNING, __FILE__,
        __LINE__, LOG_PREFIX "%zu ranks, %zu nodes, %s, table %s with %d nccl rows%s%s", nranks,
        nnodes, arch, ctx->table->source, nccl_rows,
        ctx->step_aside ? "; NCCL_ALGO or NCCL_PROTO is set, so nvlar leaves NCCL's choice alone" : "",
        atomic_load(&ctx->rows) == ROWS_WAITING
            ? "; rows apply once nvlar's setup finds the same table and architecture on every rank"
            : "");
  }
  return ncclSuccess;
}

/* The table row for this call, if it names an algorithm/protocol that NCCL offers here. */
static const struct nvlar_tuning_row *matching_row(struct tuner_context *ctx, int coll,
                                                   size_t bytes) {
  if (ctx == NULL || ctx->step_aside) return NULL;
  int rows = atomic_load(&ctx->rows);
  if (rows == ROWS_WAITING || rows == ROWS_DROPPED) return NULL;
  return nvlar_tuning_find_nccl(ctx->table, coll, bytes, (int)ctx->nranks, (int)ctx->nnodes,
                                ctx->arch);
}

/* Marks the row's algorithm/protocol as free in NCCL's cost table (NCCL picks the cheapest),
 * unless NCCL marked that entry as unusable. The table is NCCL's [numAlgo][numProto] array. */
static void choose(struct tuner_context *ctx, int coll, size_t bytes, float **cost_table,
                   int num_algo, int num_proto, int *channels) {
  const struct nvlar_tuning_row *row = matching_row(ctx, coll, bytes);
  if (row == NULL || cost_table == NULL || row->algo >= num_algo || row->proto >= num_proto) return;
  float *cost = (float *)cost_table + row->algo * num_proto + row->proto;
  if (*cost == NVLAR_ALGO_PROTO_IGNORE) {
    note_decision(ctx, row, coll, bytes, false);
    return;
  }
  *cost = 0.0f;
  if (row->count > 0 && channels != NULL) *channels = row->count;
  note_decision(ctx, row, coll, bytes, true);
}

static ncclResult_t tuner_finish(void *context) {
  if (context != NULL) {
    pthread_mutex_lock(&agreement.lock);
    stop_waiting_locked(context);
    pthread_mutex_unlock(&agreement.lock);
  }
  free(context);
  return ncclSuccess;
}

/* ---- v5 and v4 (same getCollInfo) */

static ncclResult_t get_coll_info_v4(void *context, int coll, size_t bytes, int pipe_ops,
                                     float **cost_table, int num_algo, int num_proto,
                                     int reg_buff, int *channels) {
  (void)pipe_ops;
  (void)reg_buff;
  choose(context, coll, bytes, cost_table, num_algo, num_proto, channels);
  return ncclSuccess;
}

static ncclResult_t init_v5(void **context, uint64_t comm_id, size_t nranks, size_t nnodes,
                            nvlar_nccl_logger log, nvlar_nvl_domain_info_v5 *nvl_domains,
                            nvlar_tuner_constants_v5 *constants) {
  (void)comm_id;
  (void)nvl_domains;
  (void)constants; /* left as NCCL set them */
  return tuner_init(nranks, nnodes, log, context);
}

NVLAR_EXPORT const nvlar_tuner_v5 ncclTunerPlugin_v5 = {
    .name = "nvlar", .init = init_v5, .getCollInfo = get_coll_info_v4, .finalize = tuner_finish};

NVLAR_EXPORT const nvlar_tuner_v4 ncclTunerPlugin_v4 = {
    .name = "nvlar", .init = tuner_init, .getCollInfo = get_coll_info_v4, .destroy = tuner_finish};

/* ---- v3: no registered-buffer argument */

static ncclResult_t get_coll_info_v3(void *context, int coll, size_t bytes, int pipe_ops,
                                     float **cost_table, int num_algo, int num_proto,
                                     int *channels) {
  return get_coll_info_v4(context, coll, bytes, pipe_ops, cost_table, num_algo, num_proto, 0, channels);
}

NVLAR_EXPORT const nvlar_tuner_v3 ncclTunerPlugin_v3 = {
    .name = "nvlar", .init = tuner_init, .getCollInfo = get_coll_info_v3, .destroy = tuner_finish};

/* ---- v2: returns the algorithm and protocol instead of editing a cost table */

static ncclResult_t get_coll_info_v2(void *context, int coll, size_t bytes, int collnet_support,
                                     int nvls_support, int pipe_ops, int *algorithm, int *protocol,
                                     int *channels) {
  (void)pipe_ops;
  const struct nvlar_tuning_row *row = matching_row(context, coll, bytes);
  if (row == NULL) return ncclSuccess;
  bool collnet = row->algo == NVLAR_ALGO_COLLNET_DIRECT || row->algo == NVLAR_ALGO_COLLNET_CHAIN;
  bool nvls = row->algo == NVLAR_ALGO_NVLS || row->algo == NVLAR_ALGO_NVLS_TREE;
  if ((collnet && !collnet_support) || (nvls && !nvls_support)) {
    note_decision(context, row, coll, bytes, false);
    return ncclSuccess;
  }
  *algorithm = row->algo;
  *protocol = row->proto;
  if (row->count > 0) *channels = row->count;
  note_decision(context, row, coll, bytes, true);
  return ncclSuccess;
}

NVLAR_EXPORT const nvlar_tuner_v2 ncclTunerPlugin_v2 = {
    .name = "nvlar", .init = tuner_init, .getCollInfo = get_coll_info_v2, .destroy = tuner_finish};
