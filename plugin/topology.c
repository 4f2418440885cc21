#include "topology.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "log.h"

static uint64_t fnv1a(uint64_t hash, const char *text) {
  for (; *text != '\0'; text++) hash = (hash ^ (unsigned char)*text) * 0x100000001b3ull;
  return hash;
}

/* Host name plus boot id: containers on one machine may share a host name. */
static uint64_t host_hash(void) {
  char host[256] = "", boot[64] = "";
  gethostname(host, sizeof(host) - 1);
  FILE *file = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (file != NULL) {
    if (fgets(boot, sizeof(boot), file) == NULL) boot[0] = '\0';
    fclose(file);
  }
  return fnv1a(fnv1a(0xcbf29ce484222325ull, host), boot);
}

bool nvlar_describe_rank(int cuda_device, struct nvlar_rank_info *info) {
  info->version = NVLAR_RANK_INFO_VERSION;
  info->host_hash = host_hash();
  info->pid = (int32_t)getpid();
  struct stat pid_namespace;
  info->pid_namespace = stat("/proc/self/ns/pid", &pid_namespace) == 0 ? (uint64_t)pid_namespace.st_ino : 0;
  info->cuda_device = cuda_device;
  cudaError_t error = cudaDeviceGetPCIBusId(info->bus_id, sizeof(info->bus_id), cuda_device);
  if (error == cudaSuccess) {
    error = cudaDeviceGetAttribute(&info->cc_major, cudaDevAttrComputeCapabilityMajor, cuda_device);
  }
  if (error == cudaSuccess) {
    error = cudaDeviceGetAttribute(&info->cc_minor, cudaDevAttrComputeCapabilityMinor, cuda_device);
  }
  if (error == cudaSuccess) {
    error = cudaDeviceGetAttribute(&info->multiprocessors, cudaDevAttrMultiProcessorCount, cuda_device);
  }
  if (error != cudaSuccess) {
    snprintf(info->why, sizeof(info->why), "CUDA cannot describe device %d: %s", cuda_device,
             cudaGetErrorString(error));
    return false;
  }
  return true;
}

/* The few NVML entry points used, declared here (NVML's ABI; its header is not needed). */
typedef int nvml_return;
typedef void *nvml_device;
enum { NVML_SUCCESS = 0, NVML_P2P_STATUS_OK = 0, NVML_P2P_CAPS_INDEX_READ = 0,
       NVML_P2P_CAPS_INDEX_NVLINK = 2 };
static struct {
  nvml_return (*init)(void);
  nvml_return (*handle_by_bus_id)(const char *, nvml_device *);
  nvml_return (*p2p_status)(nvml_device, nvml_device, int, int *);
  bool ready;
} nvml;
static pthread_once_t nvml_once = PTHREAD_ONCE_INIT;

static void load_nvml(void) {
  void *library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    NVLAR_INFO("NVML not available (%s): NVLink cannot be told from PCIe", dlerror());
    return;
  }
  *(void **)&nvml.init = dlsym(library, "nvmlInit_v2");
  *(void **)&nvml.handle_by_bus_id = dlsym(library, "nvmlDeviceGetHandleByPciBusId_v2");
  *(void **)&nvml.p2p_status = dlsym(library, "nvmlDeviceGetP2PStatus");
  nvml.ready = nvml.init != NULL && nvml.handle_by_bus_id != NULL && nvml.p2p_status != NULL &&
               nvml.init() == NVML_SUCCESS;
  if (!nvml.ready) NVLAR_INFO("NVML did not start: NVLink cannot be told from PCIe");
}

/* NVML's answer for one capability, or -1 when NVML cannot tell. */
static int nvml_p2p(const char *a, const char *b, int capability) {
  pthread_once(&nvml_once, load_nvml);
  if (!nvml.ready) return -1;
  nvml_device da, db;
  int status = -1;
  if (nvml.handle_by_bus_id(a, &da) != NVML_SUCCESS || nvml.handle_by_bus_id(b, &db) != NVML_SUCCESS ||
      nvml.p2p_status(da, db, capability, &status) != NVML_SUCCESS) {
    return -1;
  }
  return status == NVML_P2P_STATUS_OK;
}

enum nvlar_link nvlar_link_to(int my_device, const char *my_bus, int peer_device,
                              const char *peer_bus) {
  int access = -1;
  if (peer_device >= 0) {
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, my_device, peer_device) == cudaSuccess) access = can;
  }
  if (access < 0) access = nvml_p2p(my_bus, peer_bus, NVML_P2P_CAPS_INDEX_READ);
  if (access <= 0) return NVLAR_LINK_NONE;
  return nvml_p2p(my_bus, peer_bus, NVML_P2P_CAPS_INDEX_NVLINK) == 1 ? NVLAR_LINK_NVLINK
                                                                     : NVLAR_LINK_PCIE;
}
