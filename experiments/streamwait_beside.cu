// Stand-alone probe (not project code): can the copy-engine two-shot wait for its peers without
// holding an SM, with the stream's own waits (cuStreamWaitValue32) instead of waiting kernels,
// and what would that give beside a bf16 GEMM?
// Why: on an H100 a single CTA resident beside a GPU-wide cuBLAS GEMM costs it 8-11%, whatever
// the CTA does, while short kernels back to back cost 0-5% (docs/results.md, "What one held SM
// costs"); the copy-engine two-shot's kernels wait for peers and copies while resident, and
// beside a GEMM its calls ran 10-59 times slower than alone. A path whose waits are the
// stream's own and whose kernels only reduce data already there would hold SMs only while it
// computes. What such a path must still keep is nvlar's failure contract: a stream wait has
// no timeout and no abort flag, so abort and the timeout must release it from outside (part 1),
// and a captured wait's value is fixed, so flags must go back to 0 within each call (part 2).
// Build: nvcc -O3 -arch=sm_90 -std=c++17 -o streamwait_beside streamwait_beside.cu -lcublas -lcuda
// Run:   ./streamwait_beside [GEMM side, default 8192]
// Output, part 1 ("held"): whether every CTA of a kernel that fills every SM becomes resident
// while another stream is blocked in a stream wait (then the wait holds no SM), and whether each
// way of releasing the wait from outside (a stream write or a memset from another stream, a
// host store into mapped host memory) gets through while every SM is held, with its latency
// when idle. Part 2 ("capture"): two emulated ranks, each a graph of its own call on its own
// stream, replayed in turn; the flags' 0/1 protocol must let every replay through, and the
// output must be the sum. Part 3 ("beside"): the call on two streams, one per emulated rank,
// with stream waits or with one-CTA waiting kernels, at 4 MiB per rank, alone and beside the
// GEMM fed as nvlar-bench feeds it (3 queued ahead): mean, median and longest µs per call, the
// GEMM's TFLOP/s beside against alone right after.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <cublas_v2.h>
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "beside.cuh"

#define CHECK_CU(x)                                                              \
  do {                                                                           \
    CUresult r_ = (x);                                                           \
    if (r_ != CUDA_SUCCESS) {                                                    \
      const char *s_ = nullptr;                                                  \
      cuGetErrorName(r_, &s_);                                                   \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_ ? s_ : "?"); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static CUdeviceptr dptr(const void *p) { return (CUdeviceptr)(uintptr_t)p; }

// ---------------------------------------------------------------------------------------------
// Part 1: a stream wait while every SM is held (Holder, beside.cuh), and its release from
// outside.

static void part_held(const cudaDeviceProp &prop) {
  Holder h;
  h.init(prop);
  cudaStream_t waiter, releaser;
  CHECK(cudaStreamCreateWithFlags(&waiter, cudaStreamNonBlocking));
  CHECK(cudaStreamCreateWithFlags(&releaser, cudaStreamNonBlocking));
  unsigned *dev_flag, *host_flag;
  CHECK(cudaMalloc(&dev_flag, sizeof(unsigned)));
  CHECK(cudaHostAlloc((void **)&host_flag, sizeof(unsigned), cudaHostAllocMapped));
  unsigned *host_flag_dev;
  CHECK(cudaHostGetDevicePointer((void **)&host_flag_dev, host_flag, 0));
  cudaEvent_t passed;
  CHECK(cudaEventCreateWithFlags(&passed, cudaEventDisableTiming));
  printf("held\trelease\tholder_resident_beside_wait\treleased_while_held\trelease_us_idle_median\n");
  enum Way { kStreamWrite, kMemset, kHostStore };
  for (Way way : {kStreamWrite, kMemset, kHostStore}) {
    unsigned *flag = way == kHostStore ? host_flag_dev : dev_flag;
    auto arm = [&] {
      if (way == kHostStore) *(volatile unsigned *)host_flag = 0;
      else CHECK(cudaMemset(dev_flag, 0, sizeof(unsigned)));
      CHECK(cudaDeviceSynchronize());  // the reset lands before the wait can look
      CHECK_CU(cuStreamWaitValue32((CUstream)waiter, dptr(flag), 1, CU_STREAM_WAIT_VALUE_EQ));
      CHECK(cudaEventRecord(passed, waiter));
    };
    auto release = [&] {
      if (way == kStreamWrite) CHECK_CU(cuStreamWriteValue32((CUstream)releaser, dptr(flag), 1, 0));
      else if (way == kMemset) CHECK_CU(cuMemsetD32Async(dptr(flag), 1, 1, (CUstream)releaser));
      else *(volatile unsigned *)host_flag = 1;
    };
    // Idle latency: from issuing the release to the waiting stream's next event, median of 21.
    std::vector<double> us;
    for (int i = 0; i < 21; i++) {
      arm();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      const auto t0 = std::chrono::steady_clock::now();
      release();
      if (!completes_within(passed, 1000)) {
        printf("held\t%d\tidle release did not get through in 1 s\n", (int)way);
        exit(3);
      }
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    // While every SM is held: a waiting stream first, then the holder, then the release.
    arm();
    const bool resident = h.hold();
    release();
    const bool released = completes_within(passed, 100);
    h.let_go();
    if (!completes_within(passed, 1000)) {
      printf("held\t%d\trelease did not get through after the holder ended\n", (int)way);
      exit(3);
    }
    printf("held\t%s\t%s\t%s\t%.1f\n",
           way == kStreamWrite ? "cuStreamWriteValue32 from another stream"
           : way == kMemset    ? "cuMemsetD32Async from another stream"
                               : "host store into mapped host memory",
           resident ? "yes" : "no", released ? "yes" : "no", median(us));
    fflush(stdout);
  }
  CHECK(cudaDeviceSynchronize());
}

// ---------------------------------------------------------------------------------------------
// The call of two emulated ranks, each on its own stream.
//
// Rank r's flags live in its memory, one word per (kind, peer): arrived (the peer may write
// into my receive area), scattered (the peer's slice is in my receive area), gathered (the
// peer's reduced slice is in my gather area). The peer raises a word to 1; its owner waits
// for 1 and puts it back to 0 before it raises anything that lets the peer reach the next
// raise of that word (the owner's reset of "arrived" precedes its own "gathered", without
// which the peer cannot finish the call; its reset of "scattered" and "gathered" precede its
// next "arrived"), so a word is never raised twice between two resets, and every call waits
// for the same value: what a captured wait needs.

enum Flag { kArrived = 0, kScattered = 1, kGathered = 2 };

// Waits (bounded: 10 ms) for a flag to be 1 and resets it: the waiting kernel of the variant
// that waits the way nvlar's kernels do, on an SM.
__global__ void wait_kernel(unsigned *flag) {
  if (threadIdx.x == 0) {
    const uint64_t start = global_ns();
    while (atomicAdd(flag, 0u) != 1u && global_ns() - start < 10000000ull) {
    }
    *(volatile unsigned *)flag = 0;
    __threadfence();
  }
}

// out[i] = own[i] + received[i]: data already there, no wait (16 CTAs of 256 threads).
__global__ void reduce_kernel(float *out, const float *own, const float *received, size_t elems) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < elems; i += stride)
    out[i] = own[i] + received[i];
}

struct Call {
  size_t half = 0, half_bytes = 0;  // elements and bytes of one rank's slice
  float *in[2], *out[2], *recv[2], *gath[2];
  unsigned *flags[2];  // rank r's words: flags[r][kind]
  bool stream_waits = true;
  CUresult error = CUDA_SUCCESS;  // the first stream operation refused (in a capture, say)

  void init(size_t rank_elems) {
    half = rank_elems / 2;
    half_bytes = half * sizeof(float);
    std::vector<float> host(rank_elems);
    for (int r = 0; r < 2; r++) {
      CHECK(cudaMalloc(&in[r], rank_elems * sizeof(float)));
      CHECK(cudaMalloc(&out[r], rank_elems * sizeof(float)));
      CHECK(cudaMalloc(&recv[r], half_bytes));
      CHECK(cudaMalloc(&gath[r], half_bytes));
      CHECK(cudaMalloc(&flags[r], 3 * sizeof(unsigned)));
      CHECK(cudaMemset(flags[r], 0, 3 * sizeof(unsigned)));
      std::fill(host.begin(), host.end(), (float)(r + 1));
      CHECK(cudaMemcpy(in[r], host.data(), rank_elems * sizeof(float), cudaMemcpyHostToDevice));
    }
  }
  void clear_out() {
    for (int r = 0; r < 2; r++) CHECK(cudaMemset(out[r], 0, 2 * half_bytes));
  }
  // Every output element is 1 + 2 after a call.
  bool check() {
    std::vector<float> host(2 * half);
    for (int r = 0; r < 2; r++) {
      CHECK(cudaMemcpy(host.data(), out[r], 2 * half_bytes, cudaMemcpyDeviceToHost));
      for (float x : host)
        if (x != 3.0f) return false;
    }
    return true;
  }
  void note(CUresult r) {
    if (error == CUDA_SUCCESS) error = r;
  }
  void raise(int owner, Flag f, cudaStream_t s) {
    note(cuStreamWriteValue32((CUstream)s, dptr(&flags[owner][f]), 1, 0));
  }
  void wait(int owner, Flag f, cudaStream_t s) {
    if (stream_waits) {
      note(cuStreamWaitValue32((CUstream)s, dptr(&flags[owner][f]), 1, CU_STREAM_WAIT_VALUE_EQ));
      note(cuStreamWriteValue32((CUstream)s, dptr(&flags[owner][f]), 0, 0));
    } else {
      wait_kernel<<<1, 32, 0, s>>>(&flags[owner][f]);
      CHECK(cudaGetLastError());
    }
  }
  // Rank r's call on s. Rank r reduces slice r (rank 0 the first half, rank 1 the second).
  void enqueue(int r, cudaStream_t s) {
    const int p = 1 - r;
    raise(p, kArrived, s);
    wait(r, kArrived, s);
    // Scatter: my copy of the peer's slice into its receive area.
    CHECK(cudaMemcpyAsync(recv[p], in[r] + p * half, half_bytes, cudaMemcpyDeviceToDevice, s));
    raise(p, kScattered, s);
    wait(r, kScattered, s);
    reduce_kernel<<<16, 256, 0, s>>>(out[r] + r * half, in[r] + r * half, recv[r], half);
    CHECK(cudaGetLastError());
    // Gather: my reduced slice into the peer's gather area, then the peer's into my output.
    CHECK(cudaMemcpyAsync(gath[p], out[r] + r * half, half_bytes, cudaMemcpyDeviceToDevice, s));
    raise(p, kGathered, s);
    wait(r, kGathered, s);
    CHECK(cudaMemcpyAsync(out[r] + p * half, gath[r], half_bytes, cudaMemcpyDeviceToDevice, s));
  }
};

// ---------------------------------------------------------------------------------------------
// Part 2: each rank's call captured into its own graph, replayed in turn.

static bool stream_waits_capturable = false;  // set by part_capture

static void part_capture(Call &call, cudaStream_t s[2]) {
  for (bool stream_waits : {true, false}) {
    call.stream_waits = stream_waits;
    cudaGraphExec_t exec[2];
    cudaError_t captured = cudaSuccess;
    for (int r = 0; r < 2; r++) {
      cudaGraph_t graph = nullptr;
      call.error = CUDA_SUCCESS;
      CHECK(cudaStreamBeginCapture(s[r], cudaStreamCaptureModeThreadLocal));
      call.enqueue(r, s[r]);
      captured = cudaStreamEndCapture(s[r], &graph);
      if (call.error != CUDA_SUCCESS) {
        const char *name = nullptr;
        cuGetErrorName(call.error, &name);
        printf("capture\t%s\tstream operation in capture: %s\n",
               stream_waits ? "stream waits" : "waiting kernels", name ? name : "?");
        (void)cudaGetLastError();
        if (graph) cudaGraphDestroy(graph);
        captured = cudaErrorStreamCaptureUnsupported;
        break;
      }
      if (captured == cudaSuccess) captured = cudaGraphInstantiate(&exec[r], graph, 0);
      if (graph) CHECK(cudaGraphDestroy(graph));
      if (captured != cudaSuccess) break;
    }
    if (captured != cudaSuccess) {
      printf("capture\t%s\tnot capturable: %s\n", stream_waits ? "stream waits" : "waiting kernels",
             cudaGetErrorName(captured));
      (void)cudaGetLastError();
      continue;
    }
    if (stream_waits) stream_waits_capturable = true;
    call.clear_out();
    CHECK(cudaDeviceSynchronize());
    const int replays = 500;
    cudaEvent_t done[2];
    // In turn: were one rank's replays all issued first, a full launch queue could block the
    // host before the other rank's first replay, which the first one waits for.
    for (int r = 0; r < 2; r++) CHECK(cudaEventCreateWithFlags(&done[r], cudaEventDisableTiming));
    for (int i = 0; i < replays; i++)
      for (int r = 0; r < 2; r++) CHECK(cudaGraphLaunch(exec[r], s[r]));
    for (int r = 0; r < 2; r++) CHECK(cudaEventRecord(done[r], s[r]));
    const bool through = completes_within(done[0], 5000) && completes_within(done[1], 5000);
    if (!through) {
      printf("capture\t%s\t%d replays did not finish in 5 s\n",
             stream_waits ? "stream waits" : "waiting kernels", replays);
      exit(3);
    }
    printf("capture\t%s\t%d replays per rank through, output %s\n",
           stream_waits ? "stream waits" : "waiting kernels", replays,
           call.check() ? "correct" : "WRONG");
    fflush(stdout);
    for (int r = 0; r < 2; r++) {
      CHECK(cudaGraphExecDestroy(exec[r]));
      CHECK(cudaEventDestroy(done[r]));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Part 3: beside a GEMM.

struct Window {
  double mean_us, median_us, max_us, gemm_tflops;
  int gemms;
};

// `reps` calls of both ranks (rank r's graph on s[r] when `exec`), each timed on rank 0's
// stream: alone, or beside GEMMs fed as nvlar-bench feeds them (two GEMMs, both ranks' streams
// gated behind them, 3 more queued, then one more each time fewer than 3 are left).
static Window run_window(Gemm &g, Call &call, cudaStream_t s[2], cudaGraphExec_t exec[2],
                         int reps, bool beside) {
  std::vector<cudaEvent_t> marks(reps + 1);
  for (auto &e : marks) CHECK(cudaEventCreate(&e));
  cudaEvent_t gate, rank1_done;
  CHECK(cudaEventCreateWithFlags(&gate, cudaEventDisableTiming));
  CHECK(cudaEventCreateWithFlags(&rank1_done, cudaEventDisableTiming));
  const int ahead = 3;
  g.launched = 0;
  if (beside) {
    CHECK(cudaEventRecord(g.marks[0], g.stream));
    for (int i = 0; i < 2; i++) g.launch();
    CHECK(cudaEventRecord(gate, g.stream));
    while (g.launched < 2 + ahead) g.launch();
    for (int r = 0; r < 2; r++) CHECK(cudaStreamWaitEvent(s[r], gate, 0));
  }
  CHECK(cudaEventRecord(marks[0], s[0]));
  for (int i = 0; i < reps; i++) {
    for (int r = 0; r < 2; r++) {
      if (exec) CHECK(cudaGraphLaunch(exec[r], s[r]));
      else call.enqueue(r, s[r]);
    }
    CHECK(cudaEventRecord(marks[i + 1], s[0]));
  }
  CHECK(cudaEventRecord(rank1_done, s[1]));
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    cudaError_t q = cudaEventQuery(marks[reps]);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) CHECK(q);
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(20)) {
      printf("beside\twindow did not finish in 20 s\n");
      exit(3);
    }
    if (!beside || g.launched + 1 >= (int)g.marks.size()) continue;
    cudaError_t d = cudaEventQuery(g.marks[g.launched - ahead + 1]);
    if (d == cudaSuccess) g.launch();
    else if (d != cudaErrorNotReady) CHECK(d);
  }
  if (!completes_within(rank1_done, 5000)) {
    printf("beside\trank 1 did not finish\n");
    exit(3);
  }
  CHECK(cudaDeviceSynchronize());
  if (call.error != CUDA_SUCCESS) {
    printf("beside\tstream operation refused: %d\n", (int)call.error);
    exit(3);
  }
  Window w = {};
  std::vector<double> us;
  for (int i = 0; i < reps; i++) us.push_back(1000.0 * elapsed_ms(marks[i], marks[i + 1]));
  w.mean_us = 1000.0 * elapsed_ms(marks[0], marks[reps]) / reps;
  w.median_us = median(us);
  w.max_us = *std::max_element(us.begin(), us.end());
  if (beside) {
    const float t0 = elapsed_ms(g.marks[0], marks[0]), t1 = elapsed_ms(g.marks[0], marks[reps]);
    double busy = 0;
    int count = 0;
    for (int i = 0; i < g.launched; i++) {
      const float b = elapsed_ms(g.marks[0], g.marks[i]), e = elapsed_ms(g.marks[0], g.marks[i + 1]);
      if (b >= t0 && e <= t1) {
        busy += e - b;
        count++;
      }
    }
    w.gemms = count;
    w.gemm_tflops = count ? g.tflops(busy / count) : 0;
  }
  for (auto &e : marks) CHECK(cudaEventDestroy(e));
  CHECK(cudaEventDestroy(gate));
  CHECK(cudaEventDestroy(rank1_done));
  return w;
}

static void part_beside(Call &call, int n) {
  Gemm g;
  g.setup(n, 4096);
  g.alone_ms();  // warm-up
  const double alone_ms = g.alone_ms();
  printf("# GEMM alone: %.3f ms, %.0f TFLOP/s\n", alone_ms, g.tflops(alone_ms));
  printf("beside\twaits\tpriority\tissue\tcalls\talone_mean_us\talone_median_us\tbeside_mean_us"
         "\tbeside_median_us\tbeside_max_us\tslowdown_mean\tgemm_tflops_beside\tgemm_kept\tgemms"
         "\toutput\n");
  int least = 0, greatest = 0;
  CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  for (int priority : {least, greatest}) {
    cudaStream_t s[2];
    for (int r = 0; r < 2; r++) CHECK(cudaStreamCreateWithPriority(&s[r], cudaStreamNonBlocking, priority));
    for (bool stream_waits : {true, false}) {
      call.stream_waits = stream_waits;
      for (bool graph : {false, true}) {
        if (graph && stream_waits && !stream_waits_capturable) continue;
        cudaGraphExec_t exec_storage[2], *exec = nullptr;
        if (graph) {
          for (int r = 0; r < 2; r++) {
            cudaGraph_t captured;
            CHECK(cudaStreamBeginCapture(s[r], cudaStreamCaptureModeThreadLocal));
            call.enqueue(r, s[r]);
            CHECK(cudaStreamEndCapture(s[r], &captured));
            CHECK(cudaGraphInstantiate(&exec_storage[r], captured, 0));
            CHECK(cudaGraphDestroy(captured));
          }
          exec = exec_storage;
        }
        if (call.error != CUDA_SUCCESS) {
          printf("beside\tstream operation refused: %d\n", (int)call.error);
          exit(3);
        }
        call.clear_out();
        Window pilot = run_window(g, call, s, exec, 20, false);
        const int reps = (int)std::min(2000.0, std::max(20.0, 20000.0 / std::max(pilot.mean_us, 1.0)));
        Window alone = run_window(g, call, s, exec, reps, false);
        call.clear_out();
        Window bes = run_window(g, call, s, exec, reps, true);
        const bool correct = call.check();
        const double ref_ms = g.alone_ms();
        printf("beside\t%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%.3f\t%d\t%s\n",
               stream_waits ? "stream waits" : "waiting kernels",
               priority == greatest ? "greatest" : "default", graph ? "graph" : "eager", reps,
               alone.mean_us, alone.median_us, bes.mean_us, bes.median_us, bes.max_us,
               bes.mean_us / alone.mean_us, bes.gemm_tflops,
               bes.gemms ? bes.gemm_tflops / g.tflops(ref_ms) : 0.0, bes.gemms,
               correct ? "correct" : "WRONG");
        fflush(stdout);
        if (graph)
          for (int r = 0; r < 2; r++) CHECK(cudaGraphExecDestroy(exec_storage[r]));
      }
    }
    for (int r = 0; r < 2; r++) CHECK(cudaStreamDestroy(s[r]));
  }
}

int main(int argc, char **argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 8192;
  if (n < 256) {
    fprintf(stderr, "usage: streamwait_beside [N >= 256]\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  CHECK(cudaDriverGetVersion(&driver));
  CHECK(cudaRuntimeGetVersion(&runtime));
  printf("# %s, %d SMs, driver API %d, runtime %d\n", prop.name, prop.multiProcessorCount, driver,
         runtime);
  part_held(prop);
  Call call;
  call.init(1u << 20);  // 4 MiB per rank (floats), one chunk, as copy_beside's chain
  cudaStream_t s[2];
  for (int r = 0; r < 2; r++) CHECK(cudaStreamCreateWithFlags(&s[r], cudaStreamNonBlocking));
  part_capture(call, s);
  for (int r = 0; r < 2; r++) CHECK(cudaStreamDestroy(s[r]));
  part_beside(call, n);
  return 0;
}
