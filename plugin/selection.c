#include "selection.h"

#include "nvlar_kernels.h"

size_t nvlar_oneshot_limit(int nranks) { return nranks <= 4 ? (size_t)512 << 10 : (size_t)256 << 10; }

static int clamp_blocks(size_t wanted, int limit) {
  if (wanted < 1) return 1;
  return wanted > (size_t)limit ? limit : (int)wanted;
}

struct nvlar_choice nvlar_select(const struct nvlar_policy *policy, size_t bytes) {
  struct nvlar_choice choice = {false, NVLAR_ALGO_ONESHOT, 1};
  if (policy->forced == NVLAR_FORCE_NCCL || bytes == 0) return choice;
  if (policy->max_bytes != 0 && bytes > policy->max_bytes) return choice;
  int algo;
  if (policy->forced == NVLAR_FORCE_ONESHOT) {
    algo = NVLAR_ALGO_ONESHOT;
  } else if (policy->forced == NVLAR_FORCE_TWOSHOT) {
    algo = NVLAR_ALGO_TWOSHOT;
  } else if (bytes <= nvlar_oneshot_limit(policy->nranks)) {
    algo = NVLAR_ALGO_ONESHOT;
  } else if (bytes <= NVLAR_TWOSHOT_LIMIT) {
    algo = NVLAR_ALGO_TWOSHOT;
  } else {
    return choice;
  }
  /* One CTA per 32 KiB for the one-shot (up to 16: more CTAs mean more flags per barrier),
   * one per 64 KiB for the two-shot up to 32 (the best of the emulated CTA sweep). */
  int cap = policy->max_blocks < NVLAR_MAX_BLOCKS ? policy->max_blocks : NVLAR_MAX_BLOCKS;
  if (algo == NVLAR_ALGO_ONESHOT) {
    choice.nblocks = clamp_blocks((bytes + (32u << 10) - 1) / (32u << 10), cap < 16 ? cap : 16);
  } else {
    choice.nblocks = clamp_blocks((bytes + (64u << 10) - 1) / (64u << 10), cap < 32 ? cap : 32);
  }
  choice.nvlar = true;
  choice.algo = algo;
  return choice;
}
