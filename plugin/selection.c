#include "selection.h"

#include "nvlar_kernels.h"

static int clamp_blocks(size_t wanted, int limit) {
  if (wanted < 1) return 1;
  return wanted > (size_t)limit ? limit : (int)wanted;
}

/* Default CTAs per rank, indexed by enum nvlar_algo: one per `bytes_per_cta` of the message,
 * up to `most`. */
static const struct {
  size_t bytes_per_cta;
  int most;
} default_ctas[] = {
    /* One-shot: more CTAs mean more flags to wait for per barrier. */
    [NVLAR_ALGO_ONESHOT] = {32u << 10, 16},
    /* Two-shot: the best of the emulated CTA sweep (docs/results.md). */
    [NVLAR_ALGO_TWOSHOT] = {64u << 10, 32},
    /* Push one-shot: a packet per thread; a thread waits for each of its packets in turn. */
    [NVLAR_ALGO_PUSH] = {2u << 10, 32},
    /* TMA two-shot: each CTA streams through 224 KiB of shared-memory stages. */
    [NVLAR_ALGO_TMA] = {2u << 20, 8},
};

struct nvlar_choice nvlar_select(const struct nvlar_policy *policy, size_t bytes) {
  struct nvlar_choice choice = {false, NVLAR_ALGO_ONESHOT, 1};
  if (policy->forced == NVLAR_FORCE_NCCL || bytes == 0) return choice;
  if (policy->max_bytes != 0 && bytes > policy->max_bytes) return choice;
  int algo, ctas = 0;
  if (policy->forced == NVLAR_FORCE_ONESHOT) {
    algo = NVLAR_ALGO_ONESHOT;
  } else if (policy->forced == NVLAR_FORCE_TWOSHOT) {
    algo = NVLAR_ALGO_TWOSHOT;
  } else if (policy->forced == NVLAR_FORCE_TMA) {
    algo = NVLAR_ALGO_TMA;
  } else if (policy->forced == NVLAR_FORCE_PUSH) {
    algo = NVLAR_ALGO_PUSH;
  } else {
    const struct nvlar_tuning_row *row =
        nvlar_tuning_find_kernel(policy->table, bytes, policy->nranks, policy->arch);
    if (row == NULL || row->kernel == NVLAR_KERNEL_NCCL) return choice;
    algo = row->kernel == NVLAR_KERNEL_TWOSHOT ? NVLAR_ALGO_TWOSHOT
           : row->kernel == NVLAR_KERNEL_TMA   ? NVLAR_ALGO_TMA
           : row->kernel == NVLAR_KERNEL_PUSH  ? NVLAR_ALGO_PUSH
                                               : NVLAR_ALGO_ONESHOT;
    ctas = row->count;
  }
  /* The push one-shot is for latency-bound messages: above one chunk, the pull one-shot. */
  if (algo == NVLAR_ALGO_PUSH && bytes > NVLAR_PUSH_CHUNK_BYTES) algo = NVLAR_ALGO_ONESHOT;
  /* The TMA two-shot needs sm_90's bulk copies; elsewhere the plain two-shot does its job. */
  if (algo == NVLAR_ALGO_TMA && policy->arch < 90) algo = NVLAR_ALGO_TWOSHOT;
  int cap = policy->max_blocks < NVLAR_MAX_BLOCKS ? policy->max_blocks : NVLAR_MAX_BLOCKS;
  if (ctas > 0) {
    choice.nblocks = clamp_blocks((size_t)ctas, cap);
  } else {
    size_t per = default_ctas[algo].bytes_per_cta;
    int most = default_ctas[algo].most;
    choice.nblocks = clamp_blocks((bytes + per - 1) / per, cap < most ? cap : most);
  }
  choice.nvlar = true;
  choice.algo = algo;
  return choice;
}
