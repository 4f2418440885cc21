#include "config.h"

#include <stdlib.h>

/* NCCL's parameter parse: strtoll with base 0; no digits at all leaves the default. */
static int env_value(const char *text) {
  if (text == NULL) return NCCL_CONFIG_UNDEF_INT;
  char *end = NULL;
  long long value = strtoll(text, &end, 0);
  if (end == text) return NCCL_CONFIG_UNDEF_INT;
  if (value > (1 << 30)) value = 1 << 30;
  if (value < -(1 << 30)) value = -(1 << 30);
  return (int)value;
}

struct nvlar_cta_limits nvlar_cta_limits(const ncclConfig_t *config,
                                         const struct nvlar_cta_limits *parent,
                                         const char *env_min, const char *env_max) {
  struct nvlar_cta_limits limits = {1, NVLAR_NCCL_MAX_CHANNELS};
  if (config == NULL && parent != NULL) limits = *parent;
  /* ncclConfig_t grew minCTAs and maxCTAs in NCCL 2.17: an older config's are its defaults. */
  if (config != NULL && config->version >= NCCL_VERSION(2, 17, 0)) {
    if (config->minCTAs != NCCL_CONFIG_UNDEF_INT) limits.min_ctas = config->minCTAs;
    if (config->maxCTAs != NCCL_CONFIG_UNDEF_INT) limits.max_ctas = config->maxCTAs;
  }
  int env = env_value(env_min);
  if (env != NCCL_CONFIG_UNDEF_INT && env > 0) limits.min_ctas = env;
  env = env_value(env_max);
  if (env != NCCL_CONFIG_UNDEF_INT && env > 0) limits.max_ctas = env;
  if (limits.min_ctas > NVLAR_NCCL_MAX_CHANNELS) limits.min_ctas = NVLAR_NCCL_MAX_CHANNELS;
  if (limits.max_ctas > NVLAR_NCCL_MAX_CHANNELS) limits.max_ctas = NVLAR_NCCL_MAX_CHANNELS;
  if (limits.min_ctas > limits.max_ctas) limits.min_ctas = limits.max_ctas;
  /* NCCL rejects a config with limits below 1 (ncclInvalidArgument), so no communicator comes
   * back with them; kept sane here all the same. */
  if (limits.max_ctas < 1) limits.max_ctas = 1;
  if (limits.min_ctas < 1) limits.min_ctas = 1;
  return limits;
}

struct nvlar_cta_limits nvlar_cta_limits_from_env(const ncclConfig_t *config,
                                                  const struct nvlar_cta_limits *parent) {
  return nvlar_cta_limits(config, parent, getenv("NCCL_MIN_CTAS"), getenv("NCCL_MAX_CTAS"));
}

bool nvlar_config_nonblocking(const ncclConfig_t *config, int parent_nonblocking,
                              const char *env_blocking) {
  /* NCCL_COMM_BLOCKING, when 0 or 1, replaces whatever the config or the parent said. */
  int env = env_value(env_blocking);
  if (env == 0 || env == 1) return env == 0;
  if (config != NULL && config->blocking != NCCL_CONFIG_UNDEF_INT) return config->blocking == 0;
  return parent_nonblocking > 0;
}
