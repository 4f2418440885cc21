#include "selection.h"

#include "nvlar_kernels.h"

static int clamp_blocks(size_t wanted, int limit) {
  if (wanted < 1) return 1;
  return wanted > (size_t)limit ? limit : (int)wanted;
}

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
  } else if (algo == NVLAR_ALGO_TMA) {
    /* One CTA per 2 MiB, up to 8: each streams through 224 KiB of shared-memory stages. */
    choice.nblocks = clamp_blocks((bytes + (2u << 20) - 1) / (2u << 20), cap < 8 ? cap : 8);
  } else if (algo == NVLAR_ALGO_PUSH) {
    /* One CTA per 2 KiB (a packet per thread), up to 32: a thread waits for each of its
     * packets in turn. */
    choice.nblocks = clamp_blocks((bytes + (2u << 10) - 1) / (2u << 10), cap < 32 ? cap : 32);
  } else if (algo == NVLAR_ALGO_ONESHOT) {
    /* One CTA per 32 KiB, up to 16 (more CTAs mean more flags to wait for per barrier). */
    choice.nblocks = clamp_blocks((bytes + (32u << 10) - 1) / (32u << 10), cap < 16 ? cap : 16);
  } else {
    /* One CTA per 64 KiB, up to 32 (the best of the emulated CTA sweep, docs/results.md). */
    choice.nblocks = clamp_blocks((bytes + (64u << 10) - 1) / (64u << 10), cap < 32 ? cap : 32);
  }
  choice.nvlar = true;
  choice.algo = algo;
  return choice;
}
