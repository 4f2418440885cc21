/* Ranks in separate processes on one GPU, sharing staging and signal buffers through CUDA IPC
 * with the same code the routing layer uses (plugin/peer_buffers.c). For 2 and 4 ranks: every
 * dtype x op x size {1, 7, 4099, 300000 elements (several chunks)} x in/out-of-place x every
 * kernel, programmatic dependent launch on and off in turn; each rank checks its output
 * against the reference and guard bytes, and the ranks compare hashes of their outputs, which
 * must be identical.
 *
 * The parent touches no CUDA (a process that initialised CUDA cannot fork usable children);
 * children exchange handles through shared memory. Processes on one GPU share it by
 * time-slicing, so a barrier can wait a time slice: cases are small and waits bounded. */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allreduce_check.h"
#include "gpu_test.h"
#include "params.h"
#include "peer_buffers.h"

#define MAX_CASES 4096 /* 7 algorithms x 12 types x 5 ops x 4 sizes x 2 = 3360 */
/* The push two-shots' slices are at most an area of a CTA's region of the staging (regions of
 * staging / CTAs, each split into slots x 2 x nranks areas: push_twoshot_geometry.h). With
 * 1 MiB, when regions were 1/128 of it whatever the CTA count, 512-byte slices made 4
 * time-sliced processes take minutes; 32 MiB keeps every area at 16 KiB or more at 4 ranks. */
#define STAGING_BYTES (32u << 20)
#define MAX_COUNT 300000
#define GUARD 256

struct shared_state {
  atomic_int published;     /* ranks whose handle is in `handles` */
  atomic_int finished;      /* ranks done with every case (mappings may be closed after) */
  atomic_int closed;        /* ranks that closed their peer mappings (buffers may be freed) */
  atomic_int no_gpu;
  struct nvlar_buffer_handle handles[NVLAR_MAX_RANKS];
  uint64_t hashes[NVLAR_MAX_RANKS][MAX_CASES];
};

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Waits until *counter reaches `target`; false after 120 s (a peer died or hung). */
static int wait_for(atomic_int *counter, int target) {
  double deadline = now_seconds() + 120;
  while (atomic_load(counter) < target) {
    if (atomic_load(counter) < 0 || now_seconds() > deadline) return 0;
    usleep(1000);
  }
  return 1;
}

static uint64_t fnv1a(const unsigned char *data, size_t n) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) hash = (hash ^ data[i]) * 0x100000001b3ull;
  return hash;
}

static const size_t sizes[] = {1, 7, 4099, MAX_COUNT};

static int rank_main(int rank, int nranks, struct shared_state *shared) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    atomic_store(&shared->no_gpu, 1);
    return GPU_TEST_SKIP;
  }
  CHECK_CUDA(cudaSetDevice(0));
  CHECK_CUDA(nvlar_kernels_load()); /* as setup does: no lazy load, the TMA shared memory */
  struct nvlar_local_buffers own;
  CHECK_CUDA(nvlar_buffers_create(&own, STAGING_BYTES));
  CHECK_CUDA(nvlar_buffers_export(&own, &shared->handles[rank]));
  atomic_fetch_add(&shared->published, 1);
  CHECK(wait_for(&shared->published, nranks));
  struct nvlar_peer_buffers peers[NVLAR_MAX_RANKS];
  for (int p = 0; p < nranks; p++) {
    if (p == rank) nvlar_buffers_view(&own, &peers[p]);
    else CHECK_CUDA(nvlar_buffers_open(&shared->handles[p], &peers[p]));
  }

  size_t data_bytes = MAX_COUNT * 8 + 2 * GUARD + 64;
  unsigned char *input, *output, *host = malloc(data_bytes);
  CHECK(host != NULL);
  CHECK_CUDA(cudaMalloc((void **)&input, data_bytes));
  CHECK_CUDA(cudaMalloc((void **)&output, data_bytes));
  struct check_result *results;
  CHECK_CUDA(cudaMalloc((void **)&results, MAX_CASES * sizeof(*results)));
  CHECK_CUDA(cudaMemset(results, 0, MAX_CASES * sizeof(*results)));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  uint64_t timeout_ns = (uint64_t)nvlar_param_number(NVLAR_P_TIMEOUT_MS) * 1000000ull;

  int ncases = 0;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    for (int type = 0; type < 12; type++) {
      for (int op = 0; op < 5; op++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
          /* Quick (under compute-sanitizer): the middle sizes only. */
          if (quick_mode() && (s == 0 || s == 3)) continue;
          for (int in_place = 0; in_place < 2; in_place++, ncases++) {
            CHECK(ncases < MAX_CASES);
            size_t count = sizes[s], bytes = count * check_type_size(type);
            uint64_t seed = 0xc0ffee00u + (uint64_t)ncases;
            void *in = input + GUARD, *out = in_place ? in : (void *)(output + GUARD);
            CHECK_CUDA(cudaMemsetAsync(input, CHECK_POISON_BYTE, data_bytes, stream));
            CHECK_CUDA(cudaMemsetAsync(output, CHECK_POISON_BYTE, data_bytes, stream));
            CHECK_CUDA(check_fill(in, count, type, op, rank, nranks, seed, stream));
            struct nvlar_allreduce_args args;
            memset(&args, 0, sizeof(args));
            nvlar_buffers_fill_args(&own, peers, rank, nranks, &args);
            args.algo = algo;
            args.datatype = type;
            args.op = op;
            args.nblocks = 1 + ncases % 4;
            args.input = in;
            args.output = out;
            args.count = count;
            args.timeout_ns = timeout_ns;
            args.pdl = ncases % 2;
            CHECK_CUDA(nvlar_allreduce_launch(&args, stream));
            CHECK_CUDA(check_verify(&out, 1, count, type, op, nranks, seed, &results[ncases], stream));
            CHECK_CUDA(cudaMemcpyAsync(host, out, bytes, cudaMemcpyDeviceToHost, stream));
            CHECK_CUDA(cudaStreamSynchronize(stream));
            shared->hashes[rank][ncases] = fnv1a(host, bytes);
          }
        }
      }
    }
  }
  struct check_result *verdicts = malloc(MAX_CASES * sizeof(*verdicts));
  CHECK(verdicts != NULL);
  CHECK_CUDA(cudaMemcpy(verdicts, results, MAX_CASES * sizeof(*verdicts), cudaMemcpyDeviceToHost));
  int failures = 0;
  for (int i = 0; i < ncases; i++) {
    if (verdicts[i].mismatches || verdicts[i].guard_errors) {
      if (failures++ < 10) {
        fprintf(stderr, "rank %d/%d case %d: %llu wrong, %llu guard bytes hit\n", rank, nranks, i,
                verdicts[i].mismatches, verdicts[i].guard_errors);
      }
    }
  }
  if (own.error_host->code != NVLAR_KERNEL_OK) {
    fprintf(stderr, "rank %d/%d: timed out waiting for rank %d\n", rank, nranks, own.error_host->peer);
    failures++;
  }
  /* Unmap peers only when every rank has finished, and free only when every rank unmapped. */
  atomic_fetch_add(&shared->finished, 1);
  CHECK(wait_for(&shared->finished, nranks));
  for (int p = 0; p < nranks; p++) CHECK_CUDA(nvlar_buffers_close(&peers[p]));
  atomic_fetch_add(&shared->closed, 1);
  CHECK(wait_for(&shared->closed, nranks));
  CHECK_CUDA(cudaStreamDestroy(stream));
  CHECK_CUDA(cudaFree(input));
  CHECK_CUDA(cudaFree(output));
  CHECK_CUDA(cudaFree(results));
  nvlar_buffers_destroy(&own);
  free(host);
  free(verdicts);
  printf("rank %d/%d: %d cases, %d failed\n", rank, nranks, ncases, failures);
  return failures == 0 ? 0 : 1;
}

/* Runs one group of processes; returns 0, 1 (failure) or 77 (no GPU). */
static int run_group(int nranks) {
  struct shared_state *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(shared != MAP_FAILED);
  memset(shared, 0, sizeof(*shared));
  pid_t children[NVLAR_MAX_RANKS];
  fflush(NULL);
  for (int r = 0; r < nranks; r++) {
    children[r] = fork();
    CHECK(children[r] >= 0);
    if (children[r] == 0) _exit(rank_main(r, nranks, shared));
  }
  int status_all = 0, running = nranks;
  double deadline = now_seconds() + 540;
  while (running > 0) {
    int status;
    pid_t done = waitpid(-1, &status, WNOHANG);
    if (done == 0) {
      if (now_seconds() > deadline) {
        fprintf(stderr, "nranks=%d: ranks still running after 540 s; killing them\n", nranks);
        for (int r = 0; r < nranks; r++) kill(children[r], SIGKILL);
        status_all = 1;
        deadline = 1e30;
      }
      usleep(10000);
      continue;
    }
    running--;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    if (code == GPU_TEST_SKIP && atomic_load(&shared->no_gpu)) {
      if (status_all == 0) status_all = GPU_TEST_SKIP;
    } else if (code != 0) {
      status_all = 1;
      /* A dead rank must not leave the others waiting for its handle or its flags. */
      atomic_store(&shared->published, -1000);
      atomic_store(&shared->finished, -1000);
      atomic_store(&shared->closed, -1000);
    }
  }
  if (status_all == 0) {
    int diffs = 0;
    for (int i = 0; i < MAX_CASES; i++) {
      for (int r = 1; r < nranks; r++) diffs += shared->hashes[r][i] != shared->hashes[0][i];
    }
    if (diffs != 0) {
      fprintf(stderr, "nranks=%d: %d outputs differ between ranks\n", nranks, diffs);
      status_all = 1;
    } else {
      printf("nranks=%d processes: outputs identical on every rank\n", nranks);
    }
  }
  munmap(shared, sizeof(*shared));
  return status_all;
}

int main(void) {
  const int groups[] = {2, 4};
  int status = 0;
  for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
    int group_status = run_group(groups[g]);
    if (group_status == GPU_TEST_SKIP) {
      printf("SKIP: no GPU\n");
      return GPU_TEST_SKIP;
    }
    if (group_status != 0) status = 1;
  }
  return status;
}
