/* Real ranks on several GPUs, through NCCL with libnvlar in front (the test is linked with
 * libnvlar, which provides the NCCL API and forwards to the real NCCL). Skips (77) below 2 GPUs.
 *
 * The test re-executes itself once per scenario, so that each runs in a fresh process with its
 * own environment, and reads the children's NVLAR_DEBUG=INFO output:
 *   single [ALGO]  one process drives every GPU (ncclCommInitAll), NVLAR_ALGO=ALGO
 *   procs [ALGO]   one process per GPU (ncclCommInitRank)
 *   procs-nb       one process per GPU, non-blocking communicators (config.blocking = 0)
 *   split          one process, the communicator split into two halves
 *   death          one process per GPU; the last rank dies before an all-reduce, the others
 *                  must get ncclSystemError from ncclCommGetAsyncError, not hang
 * Each correctness scenario runs every dtype x op x size {1 B .. 256 MiB} x in/out-of-place x
 * eager/graph; outputs must match the reference (exact; avg of floats within 2 ulp) and be the
 * same bits on every rank. */
#include <signal.h>
#include <stdatomic.h>
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

struct rank_buffers {
  int device;
  cudaStream_t stream;
  unsigned char *input, *output;
  struct check_result *results; /* one per case */
  unsigned char *host;          /* for cross-rank comparison */
};

static size_t case_count(int size_index, int type) {
  size_t count = sizes[size_index] / check_type_size(type);
  return count == 0 ? 1 : count;
}

static void rank_buffers_create(struct rank_buffers *b, int device, int ncases) {
  b->device = device;
  CHECK_CUDA(cudaSetDevice(device));
  CHECK_CUDA(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking));
  CHECK_CUDA(cudaMalloc((void **)&b->input, MAX_BYTES + 2 * GUARD));
  CHECK_CUDA(cudaMalloc((void **)&b->output, MAX_BYTES + 2 * GUARD));
  CHECK_CUDA(cudaMalloc((void **)&b->results, (size_t)ncases * sizeof(struct check_result)));
  CHECK_CUDA(cudaMemset(b->results, 0, (size_t)ncases * sizeof(struct check_result)));
  b->host = malloc(1u << 20);
  CHECK(b->host != NULL);
}

/* FNV-1a of the first MiB of a rank's output: cross-rank identity (the reference checks all). */
static uint64_t output_hash(struct rank_buffers *b, const void *out, size_t bytes) {
  if (bytes > (1u << 20)) bytes = 1u << 20;
  CHECK_CUDA(cudaMemcpy(b->host, out, bytes, cudaMemcpyDeviceToHost));
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; i++) hash = (hash ^ b->host[i]) * 0x100000001b3ull;
  return hash;
}

/* Runs every case on `n` ranks whose communicators and buffers this process holds (n = 1 in
 * one-process-per-GPU mode, where `ranks_total` is the communicator's size). Returns failures. */
static int run_cases(ncclComm_t *comms, struct rank_buffers *b, int n, const int *rank_of,
                     int ranks_total, uint64_t *hashes) {
  int failures = 0, index = 0;
  for (int type = 0; type < 12; type++) {
    for (int op = 0; op < 5; op++) {
      for (size_t s = 0; s < NSIZES; s++) {
        for (int in_place = 0; in_place < 2; in_place++) {
          for (int graph = 0; graph < 2; graph++, index++) {
            size_t count = case_count((int)s, type), bytes = count * check_type_size(type);
            uint64_t seed = 0x600d0000u + (uint64_t)index;
            void *in[MAX_GPUS], *out[MAX_GPUS];
            cudaGraph_t graphs[MAX_GPUS];
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
            CHECK_NCCL(ncclGroupEnd());
            for (int i = 0; i < n; i++) {
              if (!graph) continue;
              cudaGraphExec_t exec;
              CHECK_CUDA(cudaSetDevice(b[i].device));
              CHECK_CUDA(cudaStreamEndCapture(b[i].stream, &graphs[i]));
              CHECK_CUDA(cudaGraphInstantiate(&exec, graphs[i], 0));
              CHECK_CUDA(cudaGraphLaunch(exec, b[i].stream));
              CHECK_CUDA(cudaStreamSynchronize(b[i].stream));
              CHECK_CUDA(cudaGraphExecDestroy(exec));
              CHECK_CUDA(cudaGraphDestroy(graphs[i]));
            }
            for (int i = 0; i < n; i++) {
              CHECK_CUDA(cudaSetDevice(b[i].device));
              CHECK_CUDA(check_verify(&out[i], 1, count, type, op, ranks_total, seed,
                                      &b[i].results[index], b[i].stream));
              CHECK_CUDA(cudaStreamSynchronize(b[i].stream));
              hashes[(size_t)index * MAX_GPUS + rank_of[i]] = output_hash(&b[i], out[i], bytes);
            }
          }
        }
      }
    }
  }
  for (int i = 0; i < n; i++) {
    struct check_result *host = malloc((size_t)index * sizeof(*host));
    CHECK(host != NULL);
    CHECK_CUDA(cudaSetDevice(b[i].device));
    CHECK_CUDA(cudaMemcpy(host, b[i].results, (size_t)index * sizeof(*host), cudaMemcpyDeviceToHost));
    for (int c = 0; c < index; c++) {
      if (host[c].mismatches || host[c].guard_errors) {
        if (failures++ < 10) {
          fprintf(stderr, "rank %d case %d: %llu wrong (e.g. [%llu] = %g, want %g), %llu guard bytes\n",
                  rank_of[i], c, host[c].mismatches, host[c].first_bad, host[c].got, host[c].want,
                  host[c].guard_errors);
        }
      }
    }
    free(host);
  }
  return failures;
}

static int count_cases(void) { return 12 * 5 * (int)NSIZES * 2 * 2; }

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

/* One process, every GPU; with `split`, the communicator is split into halves first. */
static int scenario_single(int split) {
  int n = gpu_count();
  ncclComm_t comms[MAX_GPUS];
  CHECK_NCCL(ncclCommInitAll(comms, n, NULL));
  int rank_of[MAX_GPUS] = {0, 1, 2, 3, 4, 5, 6, 7}, ranks_total = n;
  if (split) {
    ncclComm_t halves[MAX_GPUS];
    CHECK_NCCL(ncclGroupStart());
    for (int i = 0; i < n; i++) {
      CHECK_CUDA(cudaSetDevice(i));
      CHECK_NCCL(ncclCommSplit(comms[i], i < n / 2 ? 0 : 1, i, &halves[i], NULL));
    }
    CHECK_NCCL(ncclGroupEnd());
    for (int i = 0; i < n; i++) CHECK_NCCL(ncclCommDestroy(comms[i]));
    /* Run the first half (the cases need one communicator group at a time). */
    for (int i = 0; i < n; i++) comms[i] = halves[i];
    for (int i = n / 2; i < n; i++) CHECK_NCCL(ncclCommDestroy(comms[i]));
    n /= 2;
    ranks_total = n;
  }
  struct rank_buffers b[MAX_GPUS];
  for (int i = 0; i < n; i++) rank_buffers_create(&b[i], i, count_cases());
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

struct shared_id {
  atomic_int ready;
  ncclUniqueId id;
  uint64_t hashes[12 * 5 * NSIZES * 2 * 2 * MAX_GPUS];
};

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* One process per GPU. `die` makes the last rank exit before its all-reduce; `nonblocking`
 * creates the communicators with config.blocking = 0 and polls them ready (bounded). */
static int scenario_procs(int die, int nonblocking) {
  int n = 0;
  {
    /* Count GPUs in a child: this process must not touch CUDA before forking. */
    pid_t child = fork();
    if (child == 0) _exit(gpu_count());
    int status;
    waitpid(child, &status, 0);
    n = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  }
  struct shared_id *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(shared != MAP_FAILED);
  memset(shared, 0, sizeof(*shared));
  pid_t children[MAX_GPUS];
  fflush(NULL);
  for (int r = 0; r < n; r++) {
    children[r] = fork();
    if (children[r] != 0) continue;
    if (r == 0) {
      CHECK_NCCL(ncclGetUniqueId(&shared->id));
      atomic_store(&shared->ready, 1);
    }
    double deadline = now_seconds() + 60;
    while (!atomic_load(&shared->ready)) {
      if (now_seconds() > deadline) _exit(1);
      usleep(1000);
    }
    CHECK_CUDA(cudaSetDevice(r));
    ncclComm_t comm;
    if (nonblocking) {
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      ncclResult_t state = ncclCommInitRankConfig(&comm, n, shared->id, r, &config);
      CHECK(state == ncclSuccess || state == ncclInProgress);
      double ready_by = now_seconds() + 120;
      do {
        CHECK(ncclCommGetAsyncError(comm, &state) == ncclSuccess);
        CHECK(now_seconds() < ready_by);
      } while (state == ncclInProgress);
      CHECK(state == ncclSuccess);
    } else {
      CHECK_NCCL(ncclCommInitRank(&comm, n, shared->id, r));
    }
    struct rank_buffers b;
    rank_buffers_create(&b, r, count_cases());
    if (die) {
      if (r == n - 1) _exit(0); /* a rank that vanishes after init */
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
    int rank_of = r;
    int failures = run_cases(&comm, &b, 1, &rank_of, n, shared->hashes);
    CHECK_NCCL(ncclCommDestroy(comm));
    printf("procs: rank %d/%d, %d cases, %d failures\n", r, n, count_cases(), failures);
    _exit(failures ? 1 : 0);
  }
  int status_all = 0;
  double deadline = now_seconds() + 540;
  for (int done = 0; done < n;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      done++;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) status_all = 1;
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
  if (!die && status_all == 0 && compare_hashes(shared->hashes, n) != 0) status_all = 1;
  munmap(shared, sizeof(*shared));
  return status_all;
}

/* Runs a scenario in a child process with the given NVLAR_ALGO; checks its output. */
static int run_scenario(const char *self, const char *scenario, const char *algo,
                        const char *timeout_ms, int want_nvlar) {
  static char output[1 << 20];
  char algo_env[64], timeout_env[64];
  snprintf(algo_env, sizeof(algo_env), "NVLAR_ALGO=%s", algo);
  snprintf(timeout_env, sizeof(timeout_env), "NVLAR_TIMEOUT_MS=%s", timeout_ms);
  char *argv[] = {(char *)self, (char *)scenario, NULL};
  const char *env[] = {algo_env, timeout_env, "NVLAR_DEBUG=INFO", "NVLAR_DEBUG_FILE",
                       "NCCL_NVLS_ENABLE=0", NULL};
  int status = nvlar_test_run(argv, env, output, sizeof(output));
  int on_nvlar = nvlar_test_count_lines(output, "all-reduces run on nvlar");
  printf("== %s NVLAR_ALGO=%s: exit %d, %d communicators on nvlar\n", scenario, algo, status, on_nvlar);
  if (status != 0) fputs(output, stdout);
  if (want_nvlar && on_nvlar == 0) {
    fprintf(stderr, "%s: no communicator was set up on nvlar\n", scenario);
    fputs(output, stdout);
    return 1;
  }
  return status == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  setenv("NCCL_NVLS_ENABLE", "0", 1); /* never NVLink multicast on shared machines */
  if (argc > 1) {
    if (strcmp(argv[1], "single") == 0) return scenario_single(0);
    if (strcmp(argv[1], "split") == 0) return scenario_single(1);
    if (strcmp(argv[1], "procs") == 0) return scenario_procs(0, 0);
    if (strcmp(argv[1], "procs-nb") == 0) return scenario_procs(0, 1);
    if (strcmp(argv[1], "death") == 0) return scenario_procs(1, 0);
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
  }
  /* The driver counts GPUs in a child too, so that it never initialises CUDA itself. */
  pid_t child = fork();
  if (child == 0) _exit(gpu_count());
  int status;
  waitpid(child, &status, 0);
  int n = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  if (n < 2) {
    printf("SKIP: needs 2 GPUs, found %d\n", n);
    return GPU_TEST_SKIP;
  }
  int failures = 0;
  failures += run_scenario(argv[0], "single", "auto", "20000", 1);
  failures += run_scenario(argv[0], "single", "oneshot", "20000", 1);
  failures += run_scenario(argv[0], "single", "twoshot", "20000", 1);
  failures += run_scenario(argv[0], "single", "tma", "20000", 1);
  failures += run_scenario(argv[0], "single", "push", "20000", 1); /* sizes > 256 KiB: one-shot */
  failures += run_scenario(argv[0], "single", "nccl", "20000", 0);
  failures += run_scenario(argv[0], "procs", "auto", "20000", 1);
  failures += run_scenario(argv[0], "procs", "tma", "20000", 1);
  failures += run_scenario(argv[0], "procs-nb", "auto", "20000", 1);
  failures += run_scenario(argv[0], "split", "auto", "20000", n >= 4);
  failures += run_scenario(argv[0], "death", "oneshot", "2000", 1);
  printf("%d scenarios failed\n", failures);
  return failures ? 1 : 0;
}
