/* nvlar-info: the first thing to run after building. It calls NCCL through libnvlar (it is
 * linked against libnvlar only, never against NCCL), then reports nvlar's version, the real
 * NCCL that libnvlar forwards to, and the GPUs this process sees. */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "nccl_version.h"
#include "version.h"

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: nvlar-info [--help]\n"
          "Loads NCCL through libnvlar and prints nvlar's version, the NCCL library it\n"
          "forwards to, and the GPUs this process sees (with peer access between them).\n"
          "Exit status: 0 when NCCL was reached through libnvlar, 1 otherwise.\n"
          "Environment: NVLAR_NCCL_LIBRARY, NVLAR_DEBUG (see docs/env.md).\n");
}

struct nccl_search {
  const void *nvlar_base;
  char path[4096];
};

/* The loaded object, other than libnvlar, that defines pncclGetVersion: the real NCCL. */
static int find_real_nccl(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct nccl_search *search = data;
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') return 0;
  void *handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
  if (handle == NULL) return 0;
  void *symbol = dlsym(handle, "pncclGetVersion");
  Dl_info where;
  int found = symbol != NULL && dladdr(symbol, &where) != 0 && where.dli_fbase != search->nvlar_base;
  if (found) snprintf(search->path, sizeof(search->path), "%s", info->dlpi_name);
  dlclose(handle);
  return found;
}

static int report_nccl(void) {
  Dl_info nvlar;
  if (dladdr((const void *)ncclGetVersion, &nvlar) == 0) {
    printf("libnvlar: not found (ncclGetVersion is not from a shared object)\n");
    return 1;
  }
  printf("nvlar %s: %s\n", NVLAR_VERSION, nvlar.dli_fname);
  int code = 0;
  ncclResult_t result = ncclGetVersion(&code);
  if (result != ncclSuccess) {
    printf("NCCL: not reachable through libnvlar: %s (%s)\n", ncclGetErrorString(result),
           ncclGetLastError(NULL));
    return 1;
  }
  struct nccl_search search = {.nvlar_base = nvlar.dli_fbase, .path = ""};
  dl_iterate_phdr(find_real_nccl, &search);
  int major, minor, patch;
  nvlar_nccl_version_split(code, &major, &minor, &patch);
  printf("NCCL %d.%d.%d through libnvlar: %s\n", major, minor, patch,
         search.path[0] ? search.path : "(linked into the executable)");
  return 0;
}

static void report_gpus(void) {
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    printf("GPUs: none: no GPU is present (%s)\n",
           error != cudaSuccess ? cudaGetErrorString(error) : "the driver reports 0 devices");
    return;
  }
  printf("GPUs: %d\n", count);
  for (int device = 0; device < count; device++) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) continue;
    char bus_id[32] = "";
    cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), device);
    printf("  GPU %d: %s, sm_%d%d, %d SMs, %.1f GiB, bus %s\n", device, prop.name, prop.major,
           prop.minor, prop.multiProcessorCount, (double)prop.totalGlobalMem / (1 << 30), bus_id);
  }
  for (int a = 0; a < count; a++) {
    for (int b = a + 1; b < count; b++) {
      int ab = 0, ba = 0;
      cudaDeviceCanAccessPeer(&ab, a, b);
      cudaDeviceCanAccessPeer(&ba, b, a);
      printf("  peer access %d<->%d: %s\n", a, b, ab && ba ? "yes" : "no");
    }
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_usage(stdout);
      return 0;
    }
    fprintf(stderr, "nvlar-info: unknown argument '%s'\n", argv[i]);
    print_usage(stderr);
    return 2;
  }
  int status = report_nccl();
  report_gpus();
  return status;
}
