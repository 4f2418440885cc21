/* Which kernel, and how many CTAs, an eligible all-reduce gets: a pure function of what every
 * rank agreed on at setup (the policy, including the tuning table, whose hash the ranks
 * compared) and of the message size, so every rank chooses alike. */
#ifndef NVLAR_SELECTION_H
#define NVLAR_SELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eligibility.h"
#include "nvlar_algos.h"
#include "tuning_table.h"

/* NVLAR_ALGO's setting, as the parameter reads it: the index of its word in NVLAR_ALGO_CHOICES
 * (params.h), that is auto, NVLAR_FORCE_<ID> for every algorithm in the order of
 * nvlar_algos.h's rows, nccl. Not a place to run: NVLAR_FORCE_<X> forces NVLAR_ALGO_<X>
 * (NVLAR_FORCE_NCCL: NVLAR_ALGO_NCCL, tuning_table.h), and 0 is auto, so a zeroed policy or
 * rank record follows the table. */
enum nvlar_forced_algo {
  NVLAR_FORCE_AUTO = 0,
#define NVLAR_FORCE_ENUM(id, ...) NVLAR_FORCE_##id,
  NVLAR_ALGOS(NVLAR_FORCE_ENUM)
#undef NVLAR_FORCE_ENUM
  NVLAR_FORCE_NCCL,
};

struct nvlar_policy {
  int nranks;
  int arch;             /* compute capability x 10, the same on every rank */
  int forced;           /* enum nvlar_forced_algo */
  int ctas;             /* NVLAR_CTAS: CTAs per rank for every call; 0: a tuning row's count
                           or the algorithm's rule */
  uint64_t max_bytes;   /* NVLAR_MAX_BYTES; 0: no limit */
  int max_blocks;       /* CTAs per rank that always fit: the smallest SM count of the ranks,
                           capped at NVLAR_MAX_BLOCKS */
  int max_ctas;         /* NCCL's limit (ncclConfig_t.maxCTAs, NCCL_MAX_CTAS; the smallest of
                           the ranks'): no call gets more CTAs; 0: none */
  int min_ctas;         /* NCCL's floor (minCTAs, NCCL_MIN_CTAS; the largest of the ranks', at
                           most max_ctas): no call gets fewer, where the cap allows; 0: none */
  const struct nvlar_tuning_table *table; /* the `nvlar` rows decide with NVLAR_ALGO=auto */
};

struct nvlar_choice {
  bool nvlar;           /* false: NCCL */
  int algo;             /* enum nvlar_algo */
  int nblocks;
};

struct nvlar_choice nvlar_select(const struct nvlar_policy *policy, size_t bytes);

/* The CTA budget that tuning rows' budget=R match: the policy's max_ctas (NCCL's maxCTAs,
 * agreed by every rank), NCCL's default of 64 when it has none. */
int nvlar_policy_budget(const struct nvlar_policy *policy);

/* The policy's CTA limits from every rank's record: the smallest of the ranks' max_ctas and
 * the largest of their min_ctas (at most that max), so that every rank, which sees the same
 * records, keeps within every rank's limit alike. */
void nvlar_policy_limit_ctas(struct nvlar_policy *policy, int nranks,
                             const struct nvlar_rank_info *infos);

/* The NVLAR_ALGO value that forces `algo` (enum nvlar_algo or NVLAR_ALGO_NCCL), or
 * NVLAR_FORCE_AUTO if none. */
int nvlar_forced_value(int algo);

#endif
