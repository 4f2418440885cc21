/* nvlar's all-reduce algorithms, each declared once. Plain C, for host code and for nvcc.
 *
 * Everything the host knows about an algorithm comes from the row below: its enum value (the
 * number the kernels dispatch on), its name (the word of NVLAR_ALGO, of tuning-table rows and
 * of log lines), the GPUs and message sizes it serves and what runs in its place elsewhere,
 * and its default CTA count. plugin/ and tuner/ derive their enums, word lists, parsing,
 * demotions and defaults from this table, and the scripts read it as `nvlar-table
 * --algorithms` prints it, so a new algorithm is a row here plus its kernel and its test
 * (docs/design.md, "Selection and tuning").
 *
 * X(ID, value, name, title, min_arch, below_arch, max_bytes, above_max, bytes_per_cta,
 *   most_ctas)
 *   ID             makes NVLAR_ALGO_<ID>
 *   value          its enum value. The values are fixed (kernels and their tests use them, and
 *                  a new algorithm takes the next free one); they need not follow the rows.
 *   name           a lower-case word
 *   title          what docs, tables and plots call it ("push two-shot")
 *   min_arch       compute capability x 10 that the kernel needs; 0: any
 *   below_arch     the ID that runs instead on an older GPU (its own ID when min_arch is 0)
 *   max_bytes      message bytes per call above which `above_max` runs instead; 0: no cap.
 *                  May name a constant of nvlar_kernels.h: only kernels/nvlar_algos.c
 *                  expands this column, and it includes that header.
 *   above_max      the ID that runs instead above the cap (its own ID without a cap)
 *   bytes_per_cta  default CTAs per rank: one per this many message bytes ...
 *   most_ctas      ... and at most this many (a tuning row's ctas=N replaces the rule; both
 *                  are capped by the smallest SM count of the ranks)
 * A replacement is itself demoted where it cannot run, so a chain must end: a row's
 * below_arch needs an older GPU than the row, and its above_max a larger cap or none
 * (test/unit/test_algos.c checks both).
 *
 * Rows are in the order of NVLAR_ALGO's words (auto, the rows, nccl), of the word lists in
 * messages and of `nvlar-table --algorithms`; a new row goes last. The kernels dispatch on the value themselves
 * (kernels/allreduce.cuh), so the table carries no kernel entry point. */
#ifndef NVLAR_ALGOS_H
#define NVLAR_ALGOS_H

#include <stddef.h>

#define NVLAR_ALGOS(X)                                                                             \
  /* Copy in, barrier, every rank reduces everything: latency-bound sizes. More CTAs mean          \
   * more flags to wait for per barrier. */                                                        \
  X(ONESHOT, 0, "oneshot", "one-shot",                                                             \
    0, ONESHOT, 0, ONESHOT, 32u << 10, 16)                                                         \
  /* Copy in, barrier, reduce own slice, barrier, gather slices: bandwidth-bound sizes. Its CTA   \
   * rule: docs/tuning.md, "Kernels and their CTAs". */                                            \
  X(TWOSHOT, 1, "twoshot", "two-shot",                                                             \
    0, TWOSHOT, 0, TWOSHOT, 64u << 10, 32)                                                         \
  /* The two-shot with bulk copies (cp.async.bulk) through shared-memory stages, which need        \
   * sm_90; elsewhere the plain two-shot does its job. Each CTA streams through 224 KiB of         \
   * stages, so few CTAs. */                                                                       \
  X(TMA,     3, "tma",     "TMA two-shot",                                                         \
    90, TWOSHOT, 0, TMA, 2u << 20, 8)                                                              \
  /* Packets with inline flags written into every peer, no barrier: for latency-bound              \
   * messages, up to one chunk (1 MiB). A thread waits for each of its packets in turn, so a       \
   * CTA carries little (its CTA rule: docs/tuning.md, "Kernels and their CTAs"). */               \
  X(PUSH,    2, "push",    "push one-shot",                                                        \
    0, PUSH, NVLAR_PUSH_CHUNK_BYTES, ONESHOT, 1u << 10, 128)                                       \
  /* Stores into peers' staging (scatter, reduce and store the result into every peer,             \
   * gather), each CTA a channel that meets only the same CTA of the peers: the bandwidth          \
   * path for real NVLink, where stores reach the link from few CTAs and loads need most of        \
   * the GPU (docs/design.md, "Real NVLink"). Each CTA is bound by its round trips, so the         \
   * link fills only from many CTAs (its CTA rule: docs/tuning.md, "Kernels and their CTAs"). */   \
  X(PUSH_TWOSHOT, 4, "pushtwoshot", "push two-shot",                                               \
    0, PUSH_TWOSHOT, 0, PUSH_TWOSHOT, 32u << 10, 128)                                              \
  /* The copy-engine two-shot (kernels/ce_twoshot.cuh): peers' slices and results cross the        \
   * link by copy engine (0 SMs), a few CTAs reduce in local memory, chunk by chunk through        \
   * the staging buffer. No built-in routing row names it, only NVLAR_ALGO or a tuning row         \
   * (docs/tuning.md, "Kernels and their CTAs"). */                                                \
  X(CETWOSHOT, 5, "cetwoshot", "copy-engine two-shot",                                             \
    0, CETWOSHOT, 0, CETWOSHOT, 4u << 20, 16)                                                      \
  /* The push two-shot with bulk copies (cp.async.bulk) through shared-memory stages, which need   \
   * sm_90; elsewhere the push two-shot does its job (kernels/tma_push.cuh). One thread keeps a    \
   * whole pipeline in flight, so few CTAs: the bandwidth path within a small SM budget. No        \
   * built-in routing row names it yet, only NVLAR_ALGO or a tuning row (docs/tuning.md). */       \
  X(TMA_PUSH, 6, "tmapush", "TMA push two-shot",                                                   \
    90, PUSH_TWOSHOT, 0, TMA_PUSH, 4u << 20, 16)

enum nvlar_algo {
#define NVLAR_ALGO_ENUM(id, value, ...) NVLAR_ALGO_##id = value,
  NVLAR_ALGOS(NVLAR_ALGO_ENUM)
#undef NVLAR_ALGO_ENUM
};

/* How many algorithms: their values are 0 .. NVLAR_ALGO_COUNT - 1. */
#define NVLAR_ALGO_PLUS_ONE(...) +1
enum { NVLAR_ALGO_COUNT = 0 NVLAR_ALGOS(NVLAR_ALGO_PLUS_ONE) };
#undef NVLAR_ALGO_PLUS_ONE

/* One row of the table as data (sizes in bytes, algorithms as enum nvlar_algo values). */
struct nvlar_algo_desc {
  const char *name;
  const char *title;
  int min_arch;
  int below_arch;
  size_t max_bytes;
  int above_max;
  size_t bytes_per_cta;
  int most_ctas;
};

#ifdef __cplusplus
extern "C" {
#endif

/* Indexed by enum nvlar_algo. */
extern const struct nvlar_algo_desc nvlar_algo_descs[NVLAR_ALGO_COUNT];

/* The algorithm's name, or "?" for a value that is none. */
const char *nvlar_algo_name(int algo);

/* The algorithm called `name` (case-insensitive), or -1. */
int nvlar_algo_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
