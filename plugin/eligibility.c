#include "eligibility.h"

#include <stdio.h>
#include <string.h>

#include "nvlar_kernels.h"
#include "params.h"

bool nvlar_same_process(const struct nvlar_rank_info *a, const struct nvlar_rank_info *b) {
  return a->host_hash == b->host_hash && a->pid_namespace == b->pid_namespace && a->pid == b->pid;
}

/* Names the first setting that rank `r` has other than rank 0, with both values; false when
 * they agree. Every one of them must be alike on every rank (docs/env.md). */
static bool setting_differs(const struct nvlar_rank_info *first, const struct nvlar_rank_info *info,
                            int r, char *why, size_t why_size) {
  if (info->forced_algo != first->forced_algo) {
    char first_word[32], word[32];
    snprintf(why, why_size, "ranks 0 and %d differ in NVLAR_ALGO (%s and %s)", r,
             nvlar_param_choice_word(NVLAR_P_ALGO, first->forced_algo, first_word, sizeof(first_word)),
             nvlar_param_choice_word(NVLAR_P_ALGO, info->forced_algo, word, sizeof(word)));
    return true;
  }
  const struct {
    const char *name;
    long long first, other;
  } numbers[] = {
      {"NVLAR_CTAS", first->forced_ctas, info->forced_ctas},
      {"NVLAR_ALLOW_PCIE", first->allow_pcie, info->allow_pcie},
      {"NVLAR_MAX_BYTES", (long long)first->max_bytes, (long long)info->max_bytes},
      {"NVLAR_BUFFER_BYTES", (long long)first->buffers.staging_bytes,
       (long long)info->buffers.staging_bytes},
  };
  for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
    if (numbers[i].first != numbers[i].other) {
      snprintf(why, why_size, "ranks 0 and %d differ in %s (%lld and %lld)", r, numbers[i].name,
               numbers[i].first, numbers[i].other);
      return true;
    }
  }
  if (info->table_hash != first->table_hash) {
    snprintf(why, why_size, "ranks 0 and %d use different tuning tables (NVLAR_TUNING_FILE)", r);
    return true;
  }
  return false;
}

/* Why a communicator may not map its peers; the first failing check wins. */
enum verdict { MAY_MAP, FACT_OF_THE_JOB, SETTINGS_DIFFER };

/* Every rank runs these checks over the same gathered bytes, in the same order, so the first
 * failing check (and its message) is the same everywhere. */
static enum verdict check_before_mapping(int nranks, const struct nvlar_rank_info *infos,
                                         char *why, size_t why_size) {
  if (nranks < 2 || nranks > NVLAR_MAX_RANKS) {
    snprintf(why, why_size, "%d ranks (nvlar runs 2 to %d)", nranks, NVLAR_MAX_RANKS);
    return FACT_OF_THE_JOB;
  }
  for (int r = 0; r < nranks; r++) {
    const struct nvlar_rank_info *info = &infos[r];
    if (info->version != NVLAR_RANK_INFO_VERSION) {
      snprintf(why, why_size, "rank %d runs a different nvlar build", r);
      return FACT_OF_THE_JOB;
    }
    if (!info->wants_nvlar) {
      snprintf(why, why_size, "rank %d has %.40s", r, info->why);
      return FACT_OF_THE_JOB;
    }
    if (info->host_hash != infos[0].host_hash) {
      snprintf(why, why_size, "ranks 0 and %d are on different hosts", r);
      return FACT_OF_THE_JOB;
    }
    if (info->cc_major < 8) {
      snprintf(why, why_size, "rank %d's GPU is sm_%d%d (nvlar needs sm_80 or newer)", r,
               info->cc_major, info->cc_minor);
      return FACT_OF_THE_JOB;
    }
    if (info->cc_major != infos[0].cc_major || info->cc_minor != infos[0].cc_minor) {
      snprintf(why, why_size, "mixed GPU architectures (rank 0 sm_%d%d, rank %d sm_%d%d)",
               infos[0].cc_major, infos[0].cc_minor, r, info->cc_major, info->cc_minor);
      return FACT_OF_THE_JOB;
    }
    if (setting_differs(&infos[0], info, r, why, why_size)) return SETTINGS_DIFFER;
    if (!info->ready) {
      snprintf(why, why_size, "rank %d: %.60s", r, info->why);
      return FACT_OF_THE_JOB;
    }
    for (int p = 0; p < r; p++) {
      if (strncmp(info->bus_id, infos[p].bus_id, sizeof(info->bus_id)) == 0) {
        snprintf(why, why_size, "ranks %d and %d share one GPU", p, r);
        return FACT_OF_THE_JOB;
      }
    }
  }
  return MAY_MAP;
}

bool nvlar_eligible_to_map(int nranks, const struct nvlar_rank_info *infos, char *why,
                           size_t why_size) {
  return check_before_mapping(nranks, infos, why, why_size) == MAY_MAP;
}

bool nvlar_ineligible_for_differing_settings(int nranks, const struct nvlar_rank_info *infos) {
  char why[160];
  return check_before_mapping(nranks, infos, why, sizeof(why)) == SETTINGS_DIFFER;
}

bool nvlar_eligible(int nranks, const struct nvlar_rank_info *infos,
                    const struct nvlar_rank_links *links, char *why, size_t why_size) {
  if (!nvlar_eligible_to_map(nranks, infos, why, why_size)) return false;
  bool allow_pcie = infos[0].allow_pcie != 0;
  for (int r = 0; r < nranks; r++) {
    if (!links[r].mapped) {
      snprintf(why, why_size, "rank %d: %.60s", r, links[r].why);
      return false;
    }
    for (int p = 0; p < nranks; p++) {
      if (p == r) continue;
      int link = links[r].link[p];
      if (link == NVLAR_LINK_NONE || (link == NVLAR_LINK_PCIE && !allow_pcie)) {
        snprintf(why, why_size, "ranks %d and %d are not connected by %s", r, p,
                 link == NVLAR_LINK_NONE ? "peer access" : "NVLink (NVLAR_ALLOW_PCIE=1 allows PCIe)");
        return false;
      }
      if (!links[r].probe_ok[p]) {
        snprintf(why, why_size, "rank %d's probe of rank %d's buffers read back a wrong value", r, p);
        return false;
      }
    }
  }
  return true;
}

bool nvlar_ranks_agree_on_tuning(int nranks, const struct nvlar_rank_info *infos, int *nodes) {
  bool agree = true;
  *nodes = 0;
  for (int r = 0; r < nranks; r++) {
    bool new_host = true;
    for (int q = 0; q < r && new_host; q++) new_host = infos[q].host_hash != infos[r].host_hash;
    *nodes += new_host;
    agree = agree && infos[r].table_hash == infos[0].table_hash &&
            infos[r].cc_major == infos[0].cc_major && infos[r].cc_minor == infos[0].cc_minor;
  }
  return agree;
}
