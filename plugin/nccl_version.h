/* NCCL's version code, as ncclGetVersion reports it, split into its parts. Header-only so that
 * programs outside libnvlar (nvlar-info) share it without linking nvlar's internals. */
#ifndef NVLAR_NCCL_VERSION_H
#define NVLAR_NCCL_VERSION_H

static inline void nvlar_nccl_version_split(int code, int *major, int *minor, int *patch) {
  if (code >= 10000) { /* NCCL 2.9 and later: X*10000 + Y*100 + Z */
    *major = code / 10000;
    *minor = (code % 10000) / 100;
  } else { /* up to NCCL 2.8: X*1000 + Y*100 + Z */
    *major = code / 1000;
    *minor = (code % 1000) / 100;
  }
  *patch = code % 100;
}

#endif
