#include "selection.h"

#include "config.h"
#include "nvlar_kernels.h"

static int clamp_blocks(size_t wanted, int limit) {
  if (wanted < 1) return 1;
  return wanted > (size_t)limit ? limit : (int)wanted;
}

/* Where each forced NVLAR_ALGO value runs calls (the rows' order is not the values' order). */
static const int forced_algos[NVLAR_FORCE_NCCL + 1] = {
#define NVLAR_FORCED_ALGO(id, ...) [NVLAR_FORCE_##id] = NVLAR_ALGO_##id,
    NVLAR_ALGOS(NVLAR_FORCED_ALGO)
#undef NVLAR_FORCED_ALGO
    [NVLAR_FORCE_NCCL] = NVLAR_ALGO_NCCL,
};

/* What runs where `algo` was chosen: its descriptor hands a GPU older than it needs, or a
 * message above its cap, to another algorithm, which may hand it on in turn (nvlar_algos.h
 * keeps every chain finite; the bound only guards against a table that broke that rule). */
static int runnable_algo(int algo, int arch, size_t bytes) {
  for (int step = 0; step < NVLAR_ALGO_COUNT; step++) {
    const struct nvlar_algo_desc *desc = &nvlar_algo_descs[algo];
    if (arch < desc->min_arch) {
      algo = desc->below_arch;
    } else if (desc->max_bytes != 0 && bytes > desc->max_bytes) {
      algo = desc->above_max;
    } else {
      break;
    }
  }
  return algo;
}

int nvlar_forced_value(int algo) {
  for (int forced = NVLAR_FORCE_AUTO + 1; forced <= NVLAR_FORCE_NCCL; forced++) {
    if (forced_algos[forced] == algo) return forced;
  }
  return NVLAR_FORCE_AUTO;
}

struct nvlar_choice nvlar_select(const struct nvlar_policy *policy, size_t bytes) {
  struct nvlar_choice choice = {false, NVLAR_ALGO_ONESHOT, 1};
  if (bytes == 0) return choice;
  if (policy->max_bytes != 0 && bytes > policy->max_bytes) return choice;
  int algo, ctas = 0;
  if (policy->forced > NVLAR_FORCE_AUTO && policy->forced <= NVLAR_FORCE_NCCL) {
    algo = forced_algos[policy->forced];
  } else {
    /* A row may serve only some CTA budgets (budget=R): the fastest path within 8 CTAs need
     * not be the fastest within 64, and where none of nvlar's is, the row says nccl. */
    const struct nvlar_tuning_row *row = nvlar_tuning_find_kernel(
        policy->table, bytes, policy->nranks, policy->arch, nvlar_policy_budget(policy));
    if (row == NULL) return choice;
    algo = row->kernel;
    ctas = row->count;
  }
  if (algo == NVLAR_ALGO_NCCL) return choice;
  algo = runnable_algo(algo, policy->arch, bytes);
  if (policy->ctas > 0) ctas = policy->ctas;
  /* NCCL's limits bound every count, NVLAR_CTAS and table rows included: the SMs are the
   * user's, and the user told NCCL how many its collectives may take. */
  int cap = policy->max_blocks < NVLAR_MAX_BLOCKS ? policy->max_blocks : NVLAR_MAX_BLOCKS;
  if (policy->max_ctas > 0 && policy->max_ctas < cap) cap = policy->max_ctas;
  if (ctas > 0) {
    choice.nblocks = clamp_blocks((size_t)ctas, cap);
  } else {
    size_t per = nvlar_algo_descs[algo].bytes_per_cta;
    int most = nvlar_algo_descs[algo].most_ctas;
    choice.nblocks = clamp_blocks((bytes + per - 1) / per, cap < most ? cap : most);
  }
  int floor = policy->min_ctas < cap ? policy->min_ctas : cap;
  if (choice.nblocks < floor) choice.nblocks = floor;
  choice.nvlar = true;
  choice.algo = algo;
  return choice;
}

int nvlar_policy_budget(const struct nvlar_policy *policy) {
  return policy->max_ctas > 0 ? policy->max_ctas : NVLAR_NCCL_MAX_CHANNELS;
}

void nvlar_policy_limit_ctas(struct nvlar_policy *policy, int nranks,
                             const struct nvlar_rank_info *infos) {
  int most = 0, least = 0;
  for (int r = 0; r < nranks; r++) {
    if (infos[r].max_ctas > 0 && (most == 0 || infos[r].max_ctas < most)) most = infos[r].max_ctas;
    if (infos[r].min_ctas > least) least = infos[r].min_ctas;
  }
  if (most > 0 && least > most) least = most;
  policy->max_ctas = most;
  policy->min_ctas = least;
}
