/* Facts about this rank's GPU and how it reaches its peers, for setup's gathered records. */
#ifndef NVLAR_TOPOLOGY_H
#define NVLAR_TOPOLOGY_H

#include <stdbool.h>
#include <stdint.h>

#include "eligibility.h"

/* Fills the identity part of `info` (host hash, pid, device, bus id, compute capability,
 * multiprocessor count). Returns false, with a reason in info->why, when CUDA cannot tell. */
bool nvlar_describe_rank(int cuda_device, struct nvlar_rank_info *info);

/* How this rank's GPU reaches the GPU with bus id `peer_bus`; `peer_device` is that GPU's
 * device number in this process, or -1 when it is not visible here. NVLink is known only
 * through NVML (libnvidia-ml.so.1, loaded on first use); without it a reachable peer counts
 * as PCIe. */
enum nvlar_link nvlar_link_to(int my_device, const char *my_bus, int peer_device,
                              const char *peer_bus);

#endif
