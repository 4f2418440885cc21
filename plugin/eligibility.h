/* Whether a communicator may run on nvlar's kernels: a pure function of what every rank
 * gathered about itself and its peers, so that every rank reaches the same answer
 * (design.md, invariant 1: a split decision is a hang).
 *
 * Setup gathers two records per rank through the real NCCL: first `struct nvlar_rank_info`
 * (who and where each rank is, what it asks for, the handle of its buffers), then, after each
 * rank mapped its peers and probed every mapping, `struct nvlar_rank_links`. Both are plain
 * bytes with fixed layouts. */
#ifndef NVLAR_ELIGIBILITY_H
#define NVLAR_ELIGIBILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer_buffers.h"

#define NVLAR_RANK_INFO_VERSION 4

enum nvlar_link {
  NVLAR_LINK_NONE = 0,   /* no peer access */
  NVLAR_LINK_PCIE = 1,   /* peer access, not over NVLink (or NVLink unknown: no NVML) */
  NVLAR_LINK_NVLINK = 2, /* peer access over NVLink */
  NVLAR_LINK_SELF = 3,
};

struct nvlar_rank_info {
  uint32_t version;          /* NVLAR_RANK_INFO_VERSION: ranks built differently never mix */
  uint32_t ready;            /* 1: buffers allocated and exported; 0: see `why` */
  uint64_t host_hash;        /* host name and boot id */
  int32_t pid;
  uint64_t pid_namespace;    /* inode of /proc/self/ns/pid (0: unknown): pids compare only
                                within one namespace */
  int32_t cuda_device;       /* in this rank's process */
  char bus_id[32];           /* PCI bus id, "0000:06:00.0" */
  int32_t cc_major, cc_minor;
  int32_t multiprocessors;
  uint32_t wants_nvlar;      /* NVLAR_ALGO is not nccl */
  int32_t forced_algo;       /* NVLAR_ALGO index (0 auto) */
  int32_t forced_ctas;       /* NVLAR_CTAS (0: the table's or the algorithm's rule) */
  uint32_t allow_pcie;       /* NVLAR_ALLOW_PCIE */
  uint64_t max_bytes;        /* NVLAR_MAX_BYTES */
  uint64_t table_hash;       /* the tuning table's rows (NVLAR_TUNING_FILE or built-in) */
  int32_t min_ctas, max_ctas; /* NCCL's CTA limits of the communicator on this rank (config.h):
                                 the route keeps within the tightest of all ranks' */
  struct nvlar_buffer_handle buffers;
  uint64_t local_pointer;    /* the buffers' address in the owner's process (same-process peers) */
  char why[96];              /* when not ready: the local reason */
};

struct nvlar_rank_links {
  uint8_t link[8];           /* enum nvlar_link, to each rank */
  uint8_t probe_ok[8];       /* the write/read probe through the mapping of each rank worked */
  uint32_t mapped;           /* 1: every peer mapped and probed; 0: see `why` */
  char why[92];
};

/* The checks that need only the first record: returns true when the ranks may go on to map and
 * probe each other; otherwise writes the reason (the same text on every rank). */
bool nvlar_eligible_to_map(int nranks, const struct nvlar_rank_info *infos, char *why,
                           size_t why_size);

/* Whether nvlar_eligible_to_map refuses because a setting differs between ranks (NVLAR_ALGO,
 * NVLAR_CTAS, NVLAR_ALLOW_PCIE, NVLAR_MAX_BYTES, NVLAR_BUFFER_BYTES, the tuning table): a
 * mistake in how the job was launched, which setup reports as a WARN, where other reasons
 * (several hosts, NVLAR_DISABLE on a rank) are facts of the job, and INFO. */
bool nvlar_ineligible_for_differing_settings(int nranks, const struct nvlar_rank_info *infos);

/* The final decision, over both records of every rank. */
bool nvlar_eligible(int nranks, const struct nvlar_rank_info *infos,
                    const struct nvlar_rank_links *links, char *why, size_t why_size);

/* Whether every rank has the same tuning table and GPU architecture, so that the tuner plugin's
 * `nccl` rows would decide alike on every rank (tuner_agreement.h); *nodes: the number of
 * distinct hosts. */
bool nvlar_ranks_agree_on_tuning(int nranks, const struct nvlar_rank_info *infos, int *nodes);

/* Ranks `a` and `b` live in the same process (buffers shared by pointer, not by IPC). */
bool nvlar_same_process(const struct nvlar_rank_info *a, const struct nvlar_rank_info *b);

#endif
