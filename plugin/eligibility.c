#include "eligibility.h"

#include <stdio.h>
#include <string.h>

#include "nvlar_kernels.h"

bool nvlar_same_process(const struct nvlar_rank_info *a, const struct nvlar_rank_info *b) {
  return a->host_hash == b->host_hash && a->pid_namespace == b->pid_namespace && a->pid == b->pid;
}

/* Every rank runs these checks over the same gathered bytes, in the same order, so the first
 * failing check (and its message) is the same everywhere. */
bool nvlar_eligible_to_map(int nranks, const struct nvlar_rank_info *infos, char *why,
                           size_t why_size) {
  if (nranks < 2 || nranks > NVLAR_MAX_RANKS) {
    snprintf(why, why_size, "%d ranks (nvlar runs 2 to %d)", nranks, NVLAR_MAX_RANKS);
    return false;
  }
  for (int r = 0; r < nranks; r++) {
    const struct nvlar_rank_info *info = &infos[r];
    if (info->version != NVLAR_RANK_INFO_VERSION) {
      snprintf(why, why_size, "rank %d runs a different nvlar build", r);
      return false;
    }
    if (!info->wants_nvlar) {
      snprintf(why, why_size, "rank %d has %.40s", r, info->why);
      return false;
    }
    if (info->host_hash != infos[0].host_hash) {
      snprintf(why, why_size, "ranks 0 and %d are on different hosts", r);
      return false;
    }
    if (info->cc_major < 8) {
      snprintf(why, why_size, "rank %d's GPU is sm_%d%d (nvlar needs sm_80 or newer)", r,
               info->cc_major, info->cc_minor);
      return false;
    }
    if (info->cc_major != infos[0].cc_major || info->cc_minor != infos[0].cc_minor) {
      snprintf(why, why_size, "mixed GPU architectures (rank 0 sm_%d%d, rank %d sm_%d%d)",
               infos[0].cc_major, infos[0].cc_minor, r, info->cc_major, info->cc_minor);
      return false;
    }
    if (info->forced_algo != infos[0].forced_algo || info->forced_ctas != infos[0].forced_ctas ||
        info->allow_pcie != infos[0].allow_pcie ||
        info->max_bytes != infos[0].max_bytes ||
        info->buffers.staging_bytes != infos[0].buffers.staging_bytes) {
      snprintf(why, why_size,
               "ranks 0 and %d differ in NVLAR_ALGO, NVLAR_CTAS, NVLAR_ALLOW_PCIE, "
               "NVLAR_MAX_BYTES or NVLAR_BUFFER_BYTES",
               r);
      return false;
    }
    if (info->table_hash != infos[0].table_hash) {
      snprintf(why, why_size, "ranks 0 and %d use different tuning tables (NVLAR_TUNING_FILE)", r);
      return false;
    }
    if (!info->ready) {
      snprintf(why, why_size, "rank %d: %.60s", r, info->why);
      return false;
    }
    for (int p = 0; p < r; p++) {
      if (strncmp(info->bus_id, infos[p].bus_id, sizeof(info->bus_id)) == 0) {
        snprintf(why, why_size, "ranks %d and %d share one GPU", p, r);
        return false;
      }
    }
  }
  return true;
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
