/* Which kernel, and how many CTAs, an eligible all-reduce gets: a pure function of what every
 * rank agreed on at setup (the policy) and of the message size, so every rank chooses alike. */
#ifndef NVLAR_SELECTION_H
#define NVLAR_SELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NVLAR_ALGO choices, in the order of the parameter table (auto|oneshot|twoshot|nccl). */
enum nvlar_forced_algo {
  NVLAR_FORCE_AUTO = 0,
  NVLAR_FORCE_ONESHOT = 1,
  NVLAR_FORCE_TWOSHOT = 2,
  NVLAR_FORCE_NCCL = 3,
};

struct nvlar_policy {
  int nranks;
  int forced;           /* enum nvlar_forced_algo */
  uint64_t max_bytes;   /* NVLAR_MAX_BYTES; 0: no limit */
  int max_blocks;       /* CTAs per rank that always fit: the smallest SM count of the ranks,
                           capped at NVLAR_MAX_BLOCKS */
};

struct nvlar_choice {
  bool nvlar;           /* false: NCCL */
  int algo;             /* enum nvlar_algo */
  int nblocks;
};

/* The built-in table (provisional: thresholds from peers' published choices and the emulated
 * measurements in docs/results.md, until measured on NVLink): one-shot up to 512 KiB for
 * 2..4 ranks and 256 KiB for 5..8, two-shot up to 16 MiB, NCCL above. */
size_t nvlar_oneshot_limit(int nranks);
#define NVLAR_TWOSHOT_LIMIT ((size_t)16 << 20)

struct nvlar_choice nvlar_select(const struct nvlar_policy *policy, size_t bytes);

#endif
