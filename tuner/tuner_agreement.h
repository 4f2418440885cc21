/* Whether every rank of a communicator applies the tuner plugin's `nccl` rows alike.
 *
 * NCCL hangs when its ranks pick different algorithms or protocols for one collective, and the
 * tuner plugin decides on each rank alone, from that rank's table (NVLAR_TUNING_FILE or the
 * built-in one) and its GPU's architecture. A file that differs or cannot be read on one node,
 * or GPUs of two architectures in one communicator, would split the ranks.
 *
 * When libnvlar interposes NCCL (LD_PRELOAD, or loaded as the NCCL library), its setup of each
 * communicator gathers every rank's table hash and architecture; the plugin's context of that
 * communicator applies rows only once that setup found them equal on every rank, and never if
 * not (a WARN on every rank). Until then (the setup's own exchange included) NCCL decides
 * alone. The plugin cannot ask NCCL which communicator a context belongs to: setup takes the
 * oldest context waiting on the same GPU with the same rank and node counts (NCCL creates a
 * communicator's context during its init, and nvlar sets the communicator up right after).
 *
 * Loaded by NCCL as a tuner plugin only (NCCL_TUNER_PLUGIN=nvlar, no interposing), nothing can
 * gather: the plugin then trusts that every rank has the same table and GPU model, as any
 * NCCL tuner plugin must (docs/tuning.md). */
#ifndef NVLAR_TUNER_AGREEMENT_H
#define NVLAR_TUNER_AGREEMENT_H

#include <stdbool.h>

/* libnvlar interposes NCCL: contexts created from now on wait for their communicator's setup.
 * Called by every wrapped init, before the real one. */
void nvlar_tuner_expect_agreement(void);

/* Settles the oldest context waiting on `device` for `nranks` ranks on `nnodes` nodes: its
 * rows apply from now on if `agree`, never otherwise. Returns that context, or NULL when none
 * was waiting (no tuner plugin, or one NCCL did not load). */
void *nvlar_tuner_settle(int device, int nranks, int nnodes, bool agree);

/* How many contexts wait for their setup (tests). */
int nvlar_tuner_contexts_waiting(void);

#endif
