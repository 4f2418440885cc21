/* What nvlar takes from a communicator's ncclConfig_t and from NCCL's environment, computed as
 * NCCL 2.28 computes it (src/init.cc: parseCommConfig, envConfigOverride, copyCommConfig), so
 * that nvlar's kernels keep within the limits the user gave NCCL. */
#ifndef NVLAR_CONFIG_H
#define NVLAR_CONFIG_H

#include <stdbool.h>

#include <nccl.h>

/* NCCL's channel limit (MAXCHANNELS in NCCL's src/include/device.h): the default, and the cap,
 * of maxCTAs and minCTAs. */
#define NVLAR_NCCL_MAX_CHANNELS 64

/* A communicator's CTA limits: NCCL launches no more than max_ctas CTAs (channels) for one
 * collective and no fewer than min_ctas; nvlar's kernels keep to the same per rank. */
struct nvlar_cta_limits {
  int min_ctas, max_ctas; /* 1 <= min_ctas <= max_ctas <= NVLAR_NCCL_MAX_CHANNELS */
};

/* The limits of a new communicator:
 *   - `config`'s minCTAs/maxCTAs where set (a config older than NCCL 2.17 has none); without a
 *     config, or where unset: for a split or shrink without a config, the parent's (`parent`,
 *     may be NULL), else NCCL's defaults, 1 and NVLAR_NCCL_MAX_CHANNELS;
 *   - NCCL_MIN_CTAS / NCCL_MAX_CTAS (`env_min`, `env_max`: the variables' text, or NULL) replace
 *     them when they parse to a positive number (NCCL reads them with strtoll, base 0);
 *   - both capped at NVLAR_NCCL_MAX_CHANNELS, and min_ctas lowered to max_ctas above it. */
struct nvlar_cta_limits nvlar_cta_limits(const ncclConfig_t *config,
                                         const struct nvlar_cta_limits *parent,
                                         const char *env_min, const char *env_max);

/* The same from the process's environment. */
struct nvlar_cta_limits nvlar_cta_limits_from_env(const ncclConfig_t *config,
                                                  const struct nvlar_cta_limits *parent);

/* Whether a new communicator is non-blocking: NCCL_COMM_BLOCKING (`env_blocking`) when it is 0
 * or 1, else `config`'s blocking when set, else the parent's (`parent_nonblocking`: 1 or 0; < 0
 * when there is none), else blocking. */
bool nvlar_config_nonblocking(const ncclConfig_t *config, int parent_nonblocking,
                              const char *env_blocking);

#endif
