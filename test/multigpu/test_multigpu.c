/* Real ranks on several GPUs, through NCCL with libnvlar in front (the test is linked with
 * libnvlar, which provides the NCCL API and forwards to the real NCCL). Skips (77) below 2 GPUs.
 *
 * The test re-executes itself once per scenario, so that each runs in a fresh process with its
 * own environment, and reads the children's NVLAR_DEBUG=INFO output:
 *   single [ALGO]   one process drives every GPU (ncclCommInitAll), NVLAR_ALGO=ALGO
 *   procs [ALGO]    one process per GPU (ncclCommInitRank), ended as PyTorch ends it:
 *                   ncclCommFinalize, then ncclCommDestroy; then CUDA must still work
 *   procs-nb        one process per GPU, non-blocking communicators (config.blocking = 0),
 *                   the cases on a child of a non-blocking split (as PyTorch makes groups)
 *   split           one process, the communicator split into two halves (below 4 GPUs:
 *                   into one communicator, ranks in reverse order)
 *   death           one process per GPU; the last rank dies before an all-reduce, the others
 *                   must get ncclSystemError from ncclCommGetAsyncError, not hang
 *   stress          one process per GPU, STRESS_CALLS back-to-back all-reduces of every size
 *                   class (push, one-shot, two-shot, NCCL), the last rank delayed on its GPU
 *                   by a random 0-40 us before one call in three; every output checked
 *   churn           one process per GPU, 50 communicators made, used and destroyed in turn
 *                   (every other one finalized first); GPU memory in use must come back
 *   destroy-late    one process per GPU; rank 0 destroys 3 s after the others: the others'
 *                   destroy returns at once, and their memory comes back once rank 0 left
 *   destroy-exit    one process per GPU; the last rank exits without destroying: the others'
 *                   release sees its process gone and frees at once
 *   destroy-never   one process per GPU; the last rank stays alive and never destroys: the
 *                   others' release gives up after NVLAR_DESTROY_TIMEOUT_MS with one WARN
 *   destroy-order   one process per GPU, two communicators; rank 0 destroys A then B, the
 *                   others B then A: no destroy waits for a peer, all memory comes back
 *   kill-abort      one process per GPU, two communicators each with a kernel waiting for the
 *                   last rank, which is killed: aborting the first returns while the second's
 *                   kernel still waits (abort never waits for the device), then the second
 *   disable-one     NVLAR_DISABLE=1 on the last rank only: every rank keeps the communicator
 *                   on NCCL (the last rank still joins setup's first exchange), results right
 *   setup-oom       the last rank's buffers cannot be allocated (NVLAR_TEST_SETUP_OOM=buffers):
 *                   it says so in the exchange, every rank stays on NCCL, results right
 *   setup-oom-scratch  the last rank cannot even join the exchange: every rank's communicator
 *                   fails (ncclSystemError from ncclAllReduce and ncclCommGetAsyncError) once
 *                   the others' exchange times out, and abort ends it
 * Each correctness scenario runs every dtype x op x size {1 B .. 256 MiB} x in/out-of-place x
 * eager/graph; outputs must match the reference (exact; avg of floats within 2 ulp) and be the
 * same bits on every rank. NVLAR_TEST_QUICK=1 runs 4 dtypes and sizes up to 16 MiB, and 20 000
 * stress calls instead of 100 000: every scenario, in a few minutes. A scenario passes only if
 * its output has no NVLAR WARN line but those it expects. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#include "allreduce_check.h"
#include "gpu_test.h"
#include "nvlar_algos.h"
#include "spawn.h"

#define MAX_GPUS 8
#define GUARD 256
#define CHECK_NCCL(call)                                                                     \
  do {                                                                                       \
    ncclResult_t check_nccl_result = (call);                                                 \
    if (check_nccl_result != ncclSuccess) {                                                  \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                          \
              ncclGetErrorString(check_nccl_result));                                        \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

static const size_t sizes[] = {1, 8, 1000, 65536, (1u << 20) + 40, 16u << 20, 256u << 20};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define MAX_BYTES (256u << 20)
#define NTYPES 12
#define NOPS 5
#define MAX_CASES (NTYPES * NOPS * (int)NSIZES * 2 * 2)
/* Quick mode: these types (int8, float32, float64, bfloat16: each element size, integer and
 * float accumulation) and the sizes below 256 MiB. */
static const int quick_types[] = {0, 7, 8, 9};

struct rank_buffers {
  int device;
  cudaStream_t stream;
  unsigned char *input, *output;
  struct check_result *results; /* one per case */
  unsigned char *host;          /* for cross-rank comparison */
};

static int ntypes(void) { return quick_mode() ? (int)(sizeof(quick_types) / sizeof(int)) : NTYPES; }
static int type_at(int i) { return quick_mode() ? quick_types[i] : i; }
static int nsizes(void) { return quick_mode() ? (int)NSIZES - 1 : (int)NSIZES; }
static int count_cases(void) { return ntypes() * NOPS * nsizes() * 2 * 2; }

static size_t case_count(int size_index, int type) {
  size_t count = sizes[size_index] / check_type_size(type);
  return count == 0 ? 1 : count;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* GPU memory this process holds, on every GPU (NVML's per-process accounting: a context this
 * process made on a peer's GPU counts too). Without NVML, the memory in use on the current
 * device, which other processes' allocations on it blur. */
struct nvml_process {
  unsigned int pid;
  unsigned long long used;
  unsigned int gpu_instance, compute_instance;
};
static size_t gpu_memory_in_use(void) {
  static int (*init)(void), (*count)(unsigned int *), (*handle)(unsigned int, void **);
  static int (*processes)(void *, unsigned int *, struct nvml_process *);
  static int loaded = -1;
  if (loaded < 0) {
    void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    loaded = nvml != NULL && (init = (int (*)(void))dlsym(nvml, "nvmlInit_v2")) != NULL &&
             (count = (int (*)(unsigned int *))dlsym(nvml, "nvmlDeviceGetCount_v2")) != NULL &&
             (handle = (int (*)(unsigned int, void **))dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2")) != NULL &&
             (processes = (int (*)(void *, unsigned int *, struct nvml_process *))dlsym(
                  nvml, "nvmlDeviceGetComputeRunningProcesses_v3")) != NULL &&
             init() == 0;
  }
  unsigned int devices = 0;
  size_t mine = 0;
  int seen = 0;
  if (loaded && count(&devices) == 0) {
    for (unsigned int d = 0; d < devices; d++) {
      void *device;
      struct nvml_process list[64];
      unsigned int n = 64;
      if (handle(d, &device) != 0 || processes(device, &n, list) != 0) continue;
      for (unsigned int i = 0; i < n; i++) {
        if (list[i].pid == (unsigned int)getpid()) {
          mine += list[i].used;
          seen = 1;
        }
      }
    }
  }
  if (seen) return mine;
  size_t free_bytes = 0, total = 0;
  CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total));
  return total - free_bytes;
}

/* nvlar frees a communicator's buffers on its release thread once every peer has left (after
 * destroy returned): waits until the memory in use is back within 16 MiB of `level` (one set
 * of nvlar buffers is 96 MiB), for at most `seconds`. Returns the memory in use then. */
static size_t memory_back_to(size_t level, double seconds) {
  size_t now = gpu_memory_in_use();
  for (double until = now_seconds() + seconds; now > level + (16u << 20) && now_seconds() < until;) {
    usleep(20000);
    now = gpu_memory_in_use();
  }
  return now;
}

static void rank_buffers_create(struct rank_buffers *b, int device, int ncases, size_t max_bytes) {
  b->device = device;
  CHECK_CUDA(cudaSetDevice(device));
  CHECK_CUDA(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking));
  CHECK_CUDA(cudaMalloc((void **)&b->input, max_bytes + 2 * GUARD));
  CHECK_CUDA(cudaMalloc((void **)&b->output, max_bytes + 2 * GUARD));
  CHECK_CUDA(cudaMalloc((void **)&b->results, (size_t)ncases * sizeof(struct check_result)));
  CHECK_CUDA(cudaMemset(b->results, 0, (size_t)ncases * sizeof(struct check_result)));
  b->host = malloc(1u << 20);
  CHECK(b->host != NULL);
}

static void rank_buffers_destroy(struct rank_buffers *b) {
  CHECK_CUDA(cudaSetDevice(b->device));
  CHECK_CUDA(cudaStreamDestroy(b->stream));
  CHECK_CUDA(cudaFree(b->input));
  CHECK_CUDA(cudaFree(b->output));
  CHECK_CUDA(cudaFree(b->results));
  free(b->host);
}

/* FNV-1a of the first MiB of a rank's output: cross-rank identity (the reference checks all). */
static uint64_t output_hash(struct rank_buffers *b, const void *out, size_t bytes) {
  if (bytes > (1u << 20)) bytes = 1u << 20;
  CHECK_CUDA(cudaMemcpy(b->host, out, bytes, cudaMemcpyDeviceToHost));
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; i++) hash = (hash ^ b->host[i]) * 0x100000001b3ull;
  return hash;
}

/* Copies the device results of `ncases` cases and reports the wrong ones; returns how many. */
static int count_failures(struct rank_buffers *b, int rank, int ncases) {
  int failures = 0;
  struct check_result *host = malloc((size_t)ncases * sizeof(*host));
  CHECK(host != NULL);
  CHECK_CUDA(cudaSetDevice(b->device));
  CHECK_CUDA(cudaMemcpy(host, b->results, (size_t)ncases * sizeof(*host), cudaMemcpyDeviceToHost));
  for (int c = 0; c < ncases; c++) {
    if (host[c].mismatches || host[c].guard_errors) {
      if (failures++ < 10) {
        fprintf(stderr, "rank %d case %d: %llu wrong (e.g. [%llu] = %g, want %g), %llu guard bytes\n",
                rank, c, host[c].mismatches, host[c].first_bad, host[c].got, host[c].want,
                host[c].guard_errors);
      }
    }
  }
  free(host);
  return failures;
}

/* Waits (bounded) until a non-blocking communicator has finished its last call; a blocking
 * one has. */
static void wait_ready(ncclComm_t comm) {
  ncclResult_t state;
  double ready_by = now_seconds() + 120;
  do {
    CHECK_NCCL(ncclCommGetAsyncError(comm, &state));
    CHECK(now_seconds() < ready_by);
  } while (state == ncclInProgress);
  CHECK_NCCL(state);
}

/* A call on possibly non-blocking communicators: ncclInProgress means "issued". */
static void check_issued(ncclResult_t result, ncclComm_t *comms, int n) {
  if (result == ncclInProgress) {
    for (int i = 0; i < n; i++) wait_ready(comms[i]);
    return;
  }
  CHECK_NCCL(result);
}

/* Runs every case on `n` ranks whose communicators and buffers this process holds (n = 1 in
 * one-process-per-GPU mode, where `ranks_total` is the communicator's size). Every rank's work
 * of a case is launched (or its graph launched) before this process waits for any of them:
 * a rank that waited before its peers were launched would wait for ever, with any all-reduce
 * library. Returns failures. */
static int run_cases(ncclComm_t *comms, struct rank_buffers *b, int n, const int *rank_of,
                     int ranks_total, uint64_t *hashes) {
  int failures = 0, index = 0;
  for (int t = 0; t < ntypes(); t++) {
    int type = type_at(t);
    for (int op = 0; op < NOPS; op++) {
      for (int s = 0; s < nsizes(); s++) {
        for (int in_place = 0; in_place < 2; in_place++) {
          for (int graph = 0; graph < 2; graph++, index++) {
            size_t count = case_count(s, type), bytes = count * check_type_size(type);
            uint64_t seed = 0x600d0000u + (uint64_t)index;
            void *in[MAX_GPUS], *out[MAX_GPUS];
            cudaGraph_t graphs[MAX_GPUS];
            cudaGraphExec_t execs[MAX_GPUS];
            for (int i = 0; i < n; i++) {
              CHECK_CUDA(cudaSetDevice(b[i].device));
              in[i] = b[i].input + GUARD;
              out[i] = in_place ? in[i] : (void *)(b[i].output + GUARD);
              CHECK_CUDA(cudaMemsetAsync(b[i].input, CHECK_POISON_BYTE, bytes + 2 * GUARD, b[i].stream));
              CHECK_CUDA(cudaMemsetAsync(b[i].output, CHECK_POISON_BYTE, bytes + 2 * GUARD, b[i].stream));
              CHECK_CUDA(check_fill(in[i], count, type, op, rank_of[i], ranks_total, seed, b[i].stream));
              if (graph) CHECK_CUDA(cudaStreamBeginCapture(b[i].stream, cudaStreamCaptureModeRelaxed));
            }
            CHECK_NCCL(ncclGroupStart());
            for (int i = 0; i < n; i++) {
              CHECK_NCCL(ncclAllReduce(in[i], out[i], count, (ncclDataType_t)type, (ncclRedOp_t)op,
                                       comms[i], b[i].stream));
            }
            check_issued(ncclGroupEnd(), comms, n);
            if (graph) {
              for (int i = 0; i < n; i++) {
                CHECK_CUDA(cudaSetDevice(b[i].device));
                CHECK_CUDA(cudaStreamEndCapture(b[i].stream, &graphs[i]));
                CHECK_CUDA(cudaGraphInstantiate(&execs[i], graphs[i], 0));
              }
              for (int i = 0; i < n; i++) {
                CHECK_CUDA(cudaSetDevice(b[i].device));
                CHECK_CUDA(cudaGraphLaunch(execs[i], b[i].stream));
              }
            }
            for (int i = 0; i < n; i++) {
              CHECK_CUDA(cudaSetDevice(b[i].device));
              CHECK_CUDA(check_verify(&out[i], 1, count, type, op, ranks_total, seed,
                                      &b[i].results[index], b[i].stream));
            }
            for (int i = 0; i < n; i++) {
              CHECK_CUDA(cudaSetDevice(b[i].device));
              CHECK_CUDA(cudaStreamSynchronize(b[i].stream));
              if (graph) {
                CHECK_CUDA(cudaGraphExecDestroy(execs[i]));
                CHECK_CUDA(cudaGraphDestroy(graphs[i]));
              }
              hashes[(size_t)index * MAX_GPUS + rank_of[i]] = output_hash(&b[i], out[i], bytes);
            }
          }
        }
      }
    }
  }
  for (int i = 0; i < n; i++) failures += count_failures(&b[i], rank_of[i], index);
  return failures;
}

static int compare_hashes(const uint64_t *hashes, int ranks) {
  int diffs = 0;
  for (int c = 0; c < count_cases(); c++) {
    for (int r = 1; r < ranks; r++) diffs += hashes[(size_t)c * MAX_GPUS + r] != hashes[(size_t)c * MAX_GPUS];
  }
  if (diffs) fprintf(stderr, "%d outputs differ between ranks\n", diffs);
  return diffs;
}

static int gpu_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n > MAX_GPUS ? MAX_GPUS : n;
}

/* Counts GPUs in a child process: the caller must not initialise CUDA before it forks. */
static int gpu_count_in_child(void) {
  fflush(NULL);
  pid_t child = fork();
  if (child == 0) _exit(gpu_count());
  int status;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

/* One process, every GPU; with `split`, the communicator is split into halves first. */
static int scenario_single(int split) {
  int n = gpu_count();
  ncclComm_t comms[MAX_GPUS];
  CHECK_NCCL(ncclCommInitAll(comms, n, NULL));
  int rank_of[MAX_GPUS] = {0, 1, 2, 3, 4, 5, 6, 7}, ranks_total = n;
  if (split) {
    /* Halves with 4 GPUs or more; below, one communicator of every GPU with the ranks in
     * reverse order (halves of one rank would stay on NCCL and test nothing of nvlar). */
    int halves = n >= 4;
    ncclComm_t children[MAX_GPUS];
    CHECK_NCCL(ncclGroupStart());
    for (int i = 0; i < n; i++) {
      CHECK_CUDA(cudaSetDevice(i));
      CHECK_NCCL(ncclCommSplit(comms[i], halves && i >= n / 2, n - 1 - i, &children[i], NULL));
    }
    CHECK_NCCL(ncclGroupEnd());
    for (int i = 0; i < n; i++) CHECK_NCCL(ncclCommDestroy(comms[i]));
    /* Run the first half (the cases need one communicator group at a time). */
    for (int i = 0; i < n; i++) comms[i] = children[i];
    if (halves) {
      for (int i = n / 2; i < n; i++) CHECK_NCCL(ncclCommDestroy(comms[i]));
      n /= 2;
    }
    ranks_total = n;
    for (int i = 0; i < n; i++) CHECK_NCCL(ncclCommUserRank(comms[i], &rank_of[i]));
  }
  struct rank_buffers b[MAX_GPUS];
  for (int i = 0; i < n; i++) rank_buffers_create(&b[i], i, count_cases(), MAX_BYTES);
  uint64_t *hashes = calloc((size_t)count_cases() * MAX_GPUS, sizeof(*hashes));
  CHECK(hashes != NULL);
  int failures = run_cases(comms, b, n, rank_of, ranks_total, hashes);
  failures += compare_hashes(hashes, n);
  for (int i = 0; i < n; i++) {
    ncclResult_t async_error;
    CHECK_NCCL(ncclCommGetAsyncError(comms[i], &async_error));
    CHECK(async_error == ncclSuccess);
    CHECK_NCCL(ncclCommDestroy(comms[i]));
  }
  printf("%s: %d ranks, %d cases each, %d failures\n", split ? "split" : "single", n,
         count_cases(), failures);
  return failures ? 1 : 0;
}

/* ---- One process per GPU. */

enum procs_kind {
  PROCS_CASES,          /* the matrix; finalize then destroy */
  PROCS_NONBLOCKING,    /* the matrix on non-blocking communicators */
  PROCS_DEATH,
  PROCS_STRESS,
  PROCS_CHURN,
  PROCS_DESTROY_LATE,
  PROCS_DESTROY_EXIT,
  PROCS_DESTROY_NEVER,
  PROCS_DESTROY_ORDER,
  PROCS_KILL_ABORT,
  PROCS_DISABLE_ONE,
  PROCS_SETUP_OOM,
  PROCS_SETUP_OOM_SCRATCH,
};

struct shared_run {
  atomic_int ready;
  ncclUniqueId ids[64]; /* churn: one per communicator */
  uint64_t hashes[MAX_CASES * MAX_GPUS];
};

static ncclComm_t make_comm(struct shared_run *shared, int id, int n, int r, int nonblocking) {
  ncclComm_t comm;
  if (nonblocking) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t state = ncclCommInitRankConfig(&comm, n, shared->ids[id], r, &config);
    CHECK(state == ncclSuccess || state == ncclInProgress);
    wait_ready(comm);
  } else {
    CHECK_NCCL(ncclCommInitRank(&comm, n, shared->ids[id], r));
  }
  return comm;
}

/* One all-reduce of `count` float32 elements, checked into b->results[slot]. */
static void checked_allreduce(ncclComm_t comm, struct rank_buffers *b, int r, int n, size_t count,
                              uint64_t seed, int slot) {
  void *data = b->input + GUARD;
  CHECK_CUDA(cudaMemsetAsync(b->input, CHECK_POISON_BYTE, count * 4 + 2 * GUARD, b->stream));
  CHECK_CUDA(check_fill(data, count, 7, 0, r, n, seed, b->stream));
  CHECK_NCCL(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm, b->stream));
  CHECK_CUDA(check_verify(&data, 1, count, 7, 0, n, seed, &b->results[slot], b->stream));
}

/* After a destroy: the process's CUDA context still works (an nvlar or NCCL kernel that
 * faulted during teardown would make every later CUDA call fail). */
static void check_cuda_healthy(int device) {
  CHECK_CUDA(cudaSetDevice(device));
  void *probe;
  CHECK_CUDA(cudaMalloc(&probe, 1 << 20));
  CHECK_CUDA(cudaMemset(probe, 1, 1 << 20));
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaFree(probe));
}

/* Stress: sizes of every class (float32 counts), the push one-shot's most. */
static const size_t stress_counts[] = {1,     2,     3001,   6144,   8192,   16384,  65536,
                                       65537, 32768, 131072, 300000, 1048576, 4000001};

static uint64_t splitmix(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int stress(ncclComm_t comm, struct rank_buffers *b, int r, int n) {
  int calls = quick_mode() ? 20000 : 100000;
  if (getenv("NVLAR_TEST_STRESS_CALLS")) calls = atoi(getenv("NVLAR_TEST_STRESS_CALLS"));
  const int nclasses = (int)(sizeof(stress_counts) / sizeof(stress_counts[0]));
  uint64_t sizes_state = 42, delay_state = 7 + (uint64_t)r;
  double start = now_seconds();
  for (int i = 0; i < calls; i++) {
    /* Every rank draws the same size sequence; large sizes 1 call in 16. */
    uint64_t draw = splitmix(&sizes_state);
    int cls = (int)(draw % (uint64_t)nclasses);
    if (stress_counts[cls] > 131072 && (draw >> 32) % 16 != 0) cls = (int)((draw >> 40) % 6);
    size_t count = stress_counts[cls];
    if (r == n - 1 && splitmix(&delay_state) % 3 == 0) {
      CHECK_CUDA(check_spin(splitmix(&delay_state) % 40000, b->stream));
    }
    checked_allreduce(comm, b, r, n, count, 0x57000000u + (uint64_t)i, cls);
    /* Keep the host within a few thousand calls of the GPU (results stay per class). */
    if (i % 4096 == 4095) CHECK_CUDA(cudaStreamSynchronize(b->stream));
  }
  CHECK_CUDA(cudaStreamSynchronize(b->stream));
  int failures = count_failures(b, r, nclasses);
  printf("stress: rank %d/%d, %d calls of %d size classes in %.1f s, %d classes wrong\n", r, n,
         calls, nclasses, now_seconds() - start, failures);
  return failures;
}

/* Churn: 50 communicators in turn; the memory in use after the first (NCCL and CUDA keep some
 * state after their first communicator) must come back after the last. */
static int churn(struct shared_run *shared, struct rank_buffers *b, int r, int n) {
  const int rounds = 50;
  size_t baseline = 0;
  for (int i = 0; i < rounds; i++) {
    ncclComm_t comm = make_comm(shared, i, n, r, 0);
    checked_allreduce(comm, b, r, n, 16384, 0x5e000000u + (uint64_t)i, 0);
    checked_allreduce(comm, b, r, n, 300000, 0x5f000000u + (uint64_t)i, 1);
    CHECK_CUDA(cudaStreamSynchronize(b->stream));
    if (i % 2 == 0) CHECK_NCCL(ncclCommFinalize(comm));
    CHECK_NCCL(ncclCommDestroy(comm));
    if (i == 0) baseline = gpu_memory_in_use();
  }
  size_t after = memory_back_to(baseline, 30);
  double grown_mib = ((double)after - (double)baseline) / (1 << 20);
  int failures = count_failures(b, r, 2);
  /* One leaked set of nvlar buffers is 72 MiB: far above allocator noise. */
  if (grown_mib > 16) {
    fprintf(stderr, "churn: rank %d: %.1f MiB more GPU memory in use after %d communicators\n", r,
            grown_mib, rounds);
    failures++;
  }
  printf("churn: rank %d/%d, %d communicators, GPU memory in use %+.1f MiB, %d failures\n", r, n,
         rounds, grown_mib, failures);
  return failures;
}


/* Two communicators, destroyed in opposite orders by rank 0 and the others. */
static int destroy_order(struct shared_run *shared, struct rank_buffers *b, int r, int n) {
  size_t before = gpu_memory_in_use();
  ncclComm_t a = make_comm(shared, 0, n, r, 0), c = make_comm(shared, 1, n, r, 0);
  checked_allreduce(a, b, r, n, 8192, 11, 0);
  checked_allreduce(c, b, r, n, 300000, 12, 1);
  CHECK_CUDA(cudaStreamSynchronize(b->stream));
  double start = now_seconds();
  check_issued(ncclCommDestroy(r == 0 ? a : c), NULL, 0);
  check_issued(ncclCommDestroy(r == 0 ? c : a), NULL, 0);
  double destroy_s = now_seconds() - start;
  check_cuda_healthy(r);
  size_t after = memory_back_to(before, 30);
  int failures = count_failures(b, r, 2);
  double grown_mib = ((double)after - (double)before) / (1 << 20);
  if (grown_mib > 16) failures++;
  printf("destroy-order: rank %d/%d: both ncclCommDestroy took %.3f s; GPU memory in use %+.1f "
         "MiB from before the communicators; %d failures\n", r, n, destroy_s, grown_mib, failures);
  return failures;
}

/* The last rank dies while every other rank has a kernel waiting for it on each of two
 * communicators; the others abort them one after the other. */
static int kill_abort(struct shared_run *shared, struct rank_buffers *b, int r, int n) {
  ncclComm_t comms[2] = {make_comm(shared, 0, n, r, 0), make_comm(shared, 1, n, r, 0)};
  cudaStream_t streams[2];
  for (int i = 0; i < 2; i++) {
    CHECK_CUDA(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking));
    checked_allreduce(comms[i], b, r, n, 8192, 20 + (uint64_t)i, i); /* on nvlar: set up */
  }
  CHECK_CUDA(cudaStreamSynchronize(b->stream));
  int failures = count_failures(b, r, 2);
  if (r == n - 1) kill(getpid(), SIGKILL); /* mid-job: the others' next calls wait for it */
  float *data = (float *)(b->input + GUARD);
  for (int i = 0; i < 2; i++) {
    CHECK_NCCL(ncclAllReduce(data, data, 1024, ncclFloat32, ncclSum, comms[i], streams[i]));
  }
  usleep(200000);
  double start = now_seconds();
  CHECK_NCCL(ncclCommAbort(comms[0]));
  double first_s = now_seconds() - start;
  /* The other communicator's kernel still waits: the abort did not wait for the device. */
  cudaError_t second_busy = cudaStreamQuery(streams[1]);
  start = now_seconds();
  CHECK_NCCL(ncclCommAbort(comms[1]));
  double second_s = now_seconds() - start;
  cudaError_t drained = cudaStreamSynchronize(streams[1]); /* the aborted kernel gives up */
  cudaError_t drained0 = cudaStreamSynchronize(streams[0]);
  check_cuda_healthy(r);
  if (second_busy != cudaErrorNotReady) {
    fprintf(stderr, "kill-abort: rank %d: the second communicator's kernel was %s when the first "
            "abort returned\n", r, cudaGetErrorString(second_busy));
    failures++;
  }
  if (drained != cudaSuccess || drained0 != cudaSuccess) failures++;
  printf("kill-abort: rank %d/%d: ncclCommAbort took %.3f s, then %.3f s; %d failures\n", r, n,
         first_s, second_s, failures);
  return failures;
}

/* A rank's setup that cannot join the exchange at all: every rank's communicator fails. */
static int setup_fails(struct shared_run *shared, struct rank_buffers *b, int r, int n) {
  ncclComm_t comm = make_comm(shared, 0, n, r, 0);
  float *data = (float *)(b->input + GUARD);
  ncclResult_t call = ncclAllReduce(data, data, 1024, ncclFloat32, ncclSum, comm, b->stream);
  ncclResult_t async_error = ncclSuccess;
  CHECK_NCCL(ncclCommGetAsyncError(comm, &async_error));
  double start = now_seconds();
  CHECK_NCCL(ncclCommAbort(comm));
  double abort_s = now_seconds() - start;
  check_cuda_healthy(r);
  int failures = call != ncclSystemError || async_error != ncclSystemError;
  printf("setup-oom-scratch: rank %d/%d: ncclAllReduce %s, async error %s, ncclCommAbort took "
         "%.3f s; %d failures\n", r, n, ncclGetErrorString(call), ncclGetErrorString(async_error),
         abort_s, failures);
  return failures;
}

static int rank_main(enum procs_kind kind, struct shared_run *shared, int r, int n) {
  CHECK_CUDA(cudaSetDevice(r));
  CHECK_CUDA(check_load());
  struct rank_buffers b;
  size_t max_bytes = kind == PROCS_CASES || kind == PROCS_NONBLOCKING ? MAX_BYTES : (64u << 20);
  rank_buffers_create(&b, r, count_cases(), max_bytes);
  const int last = r == n - 1;
  /* Settings of the last rank only, read at its first NCCL call (below). */
  if (last && kind == PROCS_DISABLE_ONE) setenv("NVLAR_DISABLE", "1", 1);
  if (last && kind == PROCS_SETUP_OOM) setenv("NVLAR_TEST_SETUP_OOM", "buffers", 1);
  if (last && kind == PROCS_SETUP_OOM_SCRATCH) setenv("NVLAR_TEST_SETUP_OOM", "scratch", 1);
  if (kind == PROCS_CHURN) return churn(shared, &b, r, n) ? 1 : 0;
  if (kind == PROCS_DESTROY_ORDER) return destroy_order(shared, &b, r, n) ? 1 : 0;
  if (kind == PROCS_KILL_ABORT) return kill_abort(shared, &b, r, n) ? 1 : 0;
  if (kind == PROCS_SETUP_OOM_SCRATCH) return setup_fails(shared, &b, r, n) ? 1 : 0;
  size_t before = gpu_memory_in_use();
  ncclComm_t comm = make_comm(shared, 0, n, r, kind == PROCS_NONBLOCKING);
  int failures = 0;
  switch (kind) {
    case PROCS_DEATH: {
      if (last) _exit(0); /* a rank that vanishes after init */
      float *data = (float *)(b.input + GUARD);
      CHECK_NCCL(ncclAllReduce(data, data, 1024, ncclFloat32, ncclSum, comm, b.stream));
      cudaError_t sync = cudaStreamSynchronize(b.stream); /* returns: the kernel gives up */
      ncclResult_t async_error = ncclSuccess;
      CHECK_NCCL(ncclCommGetAsyncError(comm, &async_error));
      printf("rank %d: stream %s, async error %s\n", r, cudaGetErrorString(sync),
             ncclGetErrorString(async_error));
      CHECK(async_error == ncclSystemError);
      CHECK_NCCL(ncclCommAbort(comm));
      _exit(0);
    }
    case PROCS_STRESS:
      failures = stress(comm, &b, r, n);
      break;
    case PROCS_DESTROY_LATE:
    case PROCS_DESTROY_EXIT:
    case PROCS_DESTROY_NEVER:
    case PROCS_DISABLE_ONE:
    case PROCS_SETUP_OOM:
      /* Every kernel class once (push, one-shot, two-shot), so that every buffer is in use. */
      checked_allreduce(comm, &b, r, n, 8192, 1, 0);
      checked_allreduce(comm, &b, r, n, 300000, 2, 1);
      checked_allreduce(comm, &b, r, n, 1u << 20, 3, 2);
      CHECK_CUDA(cudaStreamSynchronize(b.stream));
      failures = count_failures(&b, r, 3);
      if (kind == PROCS_DESTROY_LATE && r == 0) sleep(3);
      if (kind == PROCS_DESTROY_EXIT && last) _exit(failures ? 1 : 0);
      if (kind == PROCS_DESTROY_NEVER && last) {
        sleep(5); /* alive, but never destroys */
        _exit(failures ? 1 : 0);
      }
      break;
    case PROCS_NONBLOCKING: {
      /* As PyTorch splits a non-blocking communicator for a new group: the child appears in
       * `child` some time after the call, then is polled ready. The cases run on the child. */
      ncclComm_t child = NULL;
      ncclResult_t split = ncclCommSplit(comm, 0, r, &child, NULL);
      CHECK(split == ncclSuccess || split == ncclInProgress);
      for (double ready_by = now_seconds() + 120; *(ncclComm_t volatile *)&child == NULL;) {
        wait_ready(comm);
        CHECK(now_seconds() < ready_by);
      }
      wait_ready(child);
      int rank_of = r;
      failures = run_cases(&child, &b, 1, &rank_of, n, shared->hashes);
      check_issued(ncclCommDestroy(child), NULL, 0);
      break;
    }
    default: {
      int rank_of = r;
      failures = run_cases(&comm, &b, 1, &rank_of, n, shared->hashes);
      if (kind == PROCS_CASES) check_issued(ncclCommFinalize(comm), &comm, 1);
      break;
    }
  }
  double destroy_start = now_seconds();
  check_issued(ncclCommDestroy(comm), NULL, 0);
  double destroy_s = now_seconds() - destroy_start;
  check_cuda_healthy(r);
  /* The release thread gives up on a rank that never leaves after NVLAR_DESTROY_TIMEOUT_MS
   * (1.5 s in that scenario): its WARN comes while this process lives. */
  if (kind == PROCS_DESTROY_NEVER) sleep(3);
  size_t after = kind == PROCS_DESTROY_NEVER ? gpu_memory_in_use() : memory_back_to(before, 30);
  printf("rank %d/%d: %d failures; ncclCommDestroy took %.2f s; GPU memory in use %+.1f MiB "
         "from before the communicator\n", r, n, failures, destroy_s,
         ((double)after - (double)before) / (1 << 20));
  rank_buffers_destroy(&b);
  return failures ? 1 : 0;
}

static int scenario_procs(enum procs_kind kind) {
  int n = gpu_count_in_child();
  struct shared_run *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(shared != MAP_FAILED);
  memset(shared, 0, sizeof(*shared));
  pid_t children[MAX_GPUS];
  fflush(NULL);
  for (int r = 0; r < n; r++) {
    children[r] = fork();
    if (children[r] != 0) continue;
    if (r == 0) {
      for (int i = 0; i < 64; i++) CHECK_NCCL(ncclGetUniqueId(&shared->ids[i]));
      atomic_store(&shared->ready, 1);
    }
    for (double deadline = now_seconds() + 60; !atomic_load(&shared->ready);) {
      if (now_seconds() > deadline) _exit(1);
      usleep(1000);
    }
    int status = rank_main(kind, shared, r, n);
    fflush(NULL);
    _exit(status);
  }
  int status_all = 0;
  double deadline = now_seconds() + 540;
  for (int done = 0; done < n;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      done++;
      /* kill-abort kills its last rank on purpose. */
      bool killed_on_purpose = kind == PROCS_KILL_ABORT && pid == children[n - 1] &&
                               WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
      if (!killed_on_purpose && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) status_all = 1;
      continue;
    }
    if (now_seconds() > deadline) {
      fprintf(stderr, "ranks still running after 540 s: a hang; killing them\n");
      for (int r = 0; r < n; r++) kill(children[r], SIGKILL);
      deadline = 1e30;
      status_all = 1;
    }
    usleep(10000);
  }
  if ((kind == PROCS_CASES || kind == PROCS_NONBLOCKING) && status_all == 0 &&
      compare_hashes(shared->hashes, n) != 0) {
    status_all = 1;
  }
  munmap(shared, sizeof(*shared));
  return status_all;
}

/* ---- The driver. */

struct scenario {
  const char *name, *algo;
  const char *extra_env;   /* one more NAME=value, or NULL */
  int want_nvlar;          /* at least this many communicators must run on nvlar */
  const char *want_warn;   /* NULL: no NVLAR WARN line allowed; else exactly `warns` of them,
                              every one containing this */
  int warns;               /* -1: one per rank but the last; -2: one per rank */
};

static int run_scenario(const char *self, const struct scenario *sc, int ngpus) {
  static char output[1 << 20];
  char algo_env[64];
  snprintf(algo_env, sizeof(algo_env), "NVLAR_ALGO=%s", sc->algo);
  char *argv[] = {(char *)self, (char *)sc->name, NULL};
  const char *env[] = {algo_env, "NVLAR_DEBUG=INFO", "NVLAR_DEBUG_FILE", "NCCL_NVLS_ENABLE=0",
                       getenv("NVLAR_TIMEOUT_MS") ? NULL : "NVLAR_TIMEOUT_MS=20000",
                       NULL, NULL};
  if (env[4] == NULL) env[4] = sc->extra_env;
  else env[5] = sc->extra_env;
  double start = now_seconds();
  int status = nvlar_test_run(argv, env, output, sizeof(output));
  int on_nvlar = nvlar_test_count_lines(output, "all-reduces run on nvlar");
  int warns = nvlar_test_count_lines(output, "NVLAR WARN");
  int failed = status != 0;
  if (on_nvlar < sc->want_nvlar) {
    fprintf(stderr, "%s: %d communicators were set up on nvlar, want %d\n", sc->name, on_nvlar,
            sc->want_nvlar);
    failed = 1;
  }
  if (sc->want_warn == NULL && warns > 0) {
    fprintf(stderr, "%s: %d NVLAR WARN lines\n", sc->name, warns);
    failed = 1;
  }
  int want_warns = sc->warns == -1 ? ngpus - 1 : sc->warns == -2 ? ngpus : sc->warns;
  if (sc->want_warn != NULL &&
      (warns != want_warns || nvlar_test_count_lines(output, sc->want_warn) != want_warns)) {
    fprintf(stderr, "%s: want %d WARN lines saying \"%s\", got %d WARN lines\n", sc->name,
            want_warns, sc->want_warn, warns);
    failed = 1;
  }
  printf("== %s NVLAR_ALGO=%s%s%s: exit %d in %.1f s, %d communicators on nvlar, %d WARN: %s\n",
         sc->name, sc->algo, sc->extra_env ? " " : "", sc->extra_env ? sc->extra_env : "", status,
         now_seconds() - start, on_nvlar, warns, failed ? "FAILED" : "ok");
  if (failed || getenv("NVLAR_TEST_VERBOSE")) fputs(output, stdout);
  /* Lines every run should show (stress and churn figures, destroy times). */
  for (const char *line = output; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t length = end ? (size_t)(end - line) : strlen(line);
    if (!failed && (strncmp(line, "stress:", 7) == 0 || strncmp(line, "churn:", 6) == 0 ||
                    strncmp(line, "destroy-order:", 14) == 0 || strncmp(line, "kill-abort:", 11) == 0 ||
                    strncmp(line, "setup-oom-scratch:", 18) == 0 ||
                    strstr(line, "ncclCommDestroy took") != NULL)) {
      printf("   %.*s\n", (int)length, line);
    }
    line = end ? end + 1 : NULL;
  }
  fflush(stdout);
  return failed;
}

int main(int argc, char **argv) {
  setenv("NCCL_NVLS_ENABLE", "0", 1); /* never NVLink multicast on shared machines */
  if (argc > 1) {
    static const struct {
      const char *name;
      int kind;
    } procs[] = {{"procs", PROCS_CASES},           {"procs-nb", PROCS_NONBLOCKING},
                 {"death", PROCS_DEATH},           {"stress", PROCS_STRESS},
                 {"churn", PROCS_CHURN},           {"destroy-late", PROCS_DESTROY_LATE},
                 {"destroy-exit", PROCS_DESTROY_EXIT}, {"destroy-never", PROCS_DESTROY_NEVER},
                 {"destroy-order", PROCS_DESTROY_ORDER}, {"kill-abort", PROCS_KILL_ABORT},
                 {"disable-one", PROCS_DISABLE_ONE}, {"setup-oom", PROCS_SETUP_OOM},
                 {"setup-oom-scratch", PROCS_SETUP_OOM_SCRATCH}};
    if (strcmp(argv[1], "single") == 0) return scenario_single(0);
    if (strcmp(argv[1], "split") == 0) return scenario_single(1);
    for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
      if (strcmp(argv[1], procs[i].name) == 0) return scenario_procs((enum procs_kind)procs[i].kind);
    }
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
  }
  /* The driver counts GPUs in a child too, so that it never initialises CUDA itself. */
  int n = gpu_count_in_child();
  if (n < 2) {
    printf("SKIP: needs 2 GPUs, found %d\n", n);
    return GPU_TEST_SKIP;
  }
  /* One process for all GPUs with every algorithm of kernels/nvlar_algos.h forced in turn
   * (where its row hands a size on, push above 1 MiB, the replacement runs). */
#define SINGLE_SCENARIO(id, value, name, ...) {"single", name, NULL, 1, NULL, 0},
  const struct scenario scenarios[] = {
      {"single", "auto", NULL, 1, NULL, 0},
      NVLAR_ALGOS(SINGLE_SCENARIO)
      {"single", "nccl", NULL, 0, NULL, 0},
      {"procs", "auto", NULL, 1, NULL, 0},
      {"procs", "tma", NULL, 1, NULL, 0},
      {"procs", "pushtwoshot", NULL, 1, NULL, 0},
      {"procs", "cetwoshot", NULL, 1, NULL, 0}, /* copies into IPC-mapped staging */
      {"procs-nb", "auto", NULL, 2 * n, NULL, 0}, /* the communicators and their children */
      {"split", "auto", NULL, 2 * n, NULL, 0},
      {"death", "oneshot", "NVLAR_TIMEOUT_MS=2000", 1, "timed out waiting for rank", -1},
      {"stress", "auto", NULL, 1, NULL, 0},
      {"stress", "pushtwoshot", NULL, 1, NULL, 0}, /* every size class, skewed ranks */
      {"churn", "auto", NULL, 1, NULL, 0},
      {"destroy-late", "auto", NULL, 1, NULL, 0},
      {"destroy-exit", "auto", NULL, 1, NULL, 0},
      {"destroy-never", "auto", "NVLAR_DESTROY_TIMEOUT_MS=1500", 1,
       "did not leave the communicator", -1},
      {"destroy-order", "auto", NULL, 2, NULL, 0},
      {"kill-abort", "auto", NULL, 2, NULL, 0},
      {"disable-one", "auto", NULL, 0, NULL, 0},
      {"setup-oom", "auto", NULL, 0, "out of memory for nvlar's buffers", 1},
      {"setup-oom-scratch", "auto", "NVLAR_TIMEOUT_MS=3000", 0,
       "reports ncclSystemError", -2},
  };
#undef SINGLE_SCENARIO
  const char *only = getenv("NVLAR_TEST_SCENARIOS"); /* e.g. "stress,churn": run just those */
  int failures = 0, ran = 0;
  for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
    if (only != NULL) {
      char pattern[64];
      snprintf(pattern, sizeof(pattern), ",%s,", scenarios[i].name);
      char list[512];
      snprintf(list, sizeof(list), ",%s,", only);
      if (strstr(list, pattern) == NULL) continue;
    }
    failures += run_scenario(argv[0], &scenarios[i], n);
    ran++;
  }
  printf("%d of %d scenarios failed\n", failures, ran);
  return failures ? 1 : 0;
}
