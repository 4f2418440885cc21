#include "real_nccl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "params.h"
#include "version.h"

static struct nvlar_real_nccl real;
static bool real_found;
static char missing_message[512] = "nvlar: no NCCL library was loaded";
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

/* Where libnvlar itself is mapped; a candidate symbol there would call back into us. */
static bool is_inside_nvlar(const void *address) {
  Dl_info self, other;
  if (address == NULL) return false;
  if (dladdr((const void *)is_inside_nvlar, &self) == 0) return false;
  if (dladdr(address, &other) == 0) return false;
  return self.dli_fbase == other.dli_fbase;
}

/* An NCCL already in the process's global scope (the application linked it, or loaded it
 * RTLD_GLOBAL): returns a handle to that same object. */
static void *find_global_nccl(void) {
  void *const scopes[] = {RTLD_NEXT, RTLD_DEFAULT};
  for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
    void *symbol = dlsym(scopes[i], "pncclGetVersion");
    if (symbol == NULL || is_inside_nvlar(symbol)) continue;
    Dl_info info;
    if (dladdr(symbol, &info) == 0 || info.dli_fname == NULL) continue;
    void *handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    if (handle != NULL) return handle;
    return RTLD_DEFAULT; /* NCCL linked into the executable itself */
  }
  return NULL;
}

static bool handle_is_nvlar(void *handle) {
  return is_inside_nvlar(dlsym(handle, "pncclGetVersion")) ||
         is_inside_nvlar(dlsym(handle, "ncclGetVersion"));
}

static void *open_library(const char *path, int extra_flags) {
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | extra_flags);
  if (handle != NULL && handle_is_nvlar(handle)) {
    dlclose(handle);
    return NULL;
  }
  return handle;
}

static void *find_nccl(char *why, size_t why_size) {
  void *handle = find_global_nccl();
  if (handle != NULL) return handle;
  /* Frameworks such as PyTorch load NCCL as a private dependency: not in the global scope,
   * but loaded, and the one the application uses. */
  handle = open_library("libnccl.so.2", RTLD_NOLOAD);
  if (handle != NULL) return handle;

  const char *configured = nvlar_param_text(NVLAR_P_NCCL_LIBRARY);
  if (configured[0] != '\0') {
    handle = open_library(configured, 0);
    if (handle == NULL) {
      const char *error = dlerror();
      snprintf(why, why_size, "NVLAR_NCCL_LIBRARY=%s cannot be loaded (%s)", configured,
               error ? error : "it is libnvlar itself");
    }
    return handle;
  }
  /* The NCCL this libnvlar was built against (its headers gave our prototypes), e.g.
   * PyTorch's copy inside a python environment, which is on no search path until PyTorch
   * loads it; then whatever libnccl.so.2 the loader finds. */
  handle = open_library(NVLAR_BUILD_NCCL_LIBRARY, 0);
  if (handle != NULL) return handle;
  handle = open_library("libnccl.so.2", 0);
  if (handle != NULL) return handle;
  const char *error = dlerror();
  snprintf(why, why_size,
           "libnccl.so.2 is neither at %s, where the build found it, nor on the loader's "
           "search path (%s); set NVLAR_NCCL_LIBRARY to the path of the real libnccl.so.2",
           NVLAR_BUILD_NCCL_LIBRARY, error ? error : "the only one found is libnvlar itself");
  return NULL;
}

static void *lookup_entry_point(void *handle, const char *name) {
  char profiling_name[128];
  snprintf(profiling_name, sizeof(profiling_name), "p%s", name);
  void *symbol = dlsym(handle, profiling_name);
  if (symbol == NULL) symbol = dlsym(handle, name);
  return is_inside_nvlar(symbol) ? NULL : symbol;
}

static void resolve_real_nccl(void) {
  char why[sizeof(missing_message) - 64] = "";
  void *handle = find_nccl(why, sizeof(why));
  if (handle == NULL) {
    snprintf(missing_message, sizeof(missing_message),
             "nvlar: no NCCL: %s; every NCCL call returns ncclSystemError", why);
    NVLAR_WARN("%s", missing_message + strlen("nvlar: "));
    return;
  }
  /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
#define NVLAR_LOOKUP(ret, name, params, args, missing)                                       \
  *(void **)(&real.name) = lookup_entry_point(handle, #name);
  NVLAR_API_ALL(NVLAR_LOOKUP)
#undef NVLAR_LOOKUP

  Dl_info info;
  if (real.ncclGetVersion != NULL &&
      dladdr(*(void **)(&real.ncclGetVersion), &info) != 0 && info.dli_fname != NULL) {
    snprintf(real.path, sizeof(real.path), "%s", info.dli_fname);
  }
  if (real.ncclGetVersion == NULL || real.ncclGetVersion(&real.version_code) != ncclSuccess) {
    snprintf(missing_message, sizeof(missing_message),
             "nvlar: no NCCL: %.400s has no working ncclGetVersion; every NCCL call returns "
             "ncclSystemError", real.path[0] ? real.path : "the library found");
    NVLAR_WARN("%s", missing_message + strlen("nvlar: "));
    return;
  }
  real_found = true;
  int major, minor, patch;
  nvlar_nccl_version_split(real.version_code, &major, &minor, &patch);
  NVLAR_INFO("nvlar %s forwarding to NCCL %d.%d.%d (%s)", NVLAR_VERSION, major, minor, patch,
             real.path);
}

const struct nvlar_real_nccl *nvlar_real_nccl(void) {
  pthread_once(&real_once, resolve_real_nccl);
  return real_found ? &real : NULL;
}

void nvlar_real_nccl_warn_missing(const char *name, atomic_int *warned) {
  if (atomic_exchange(warned, 1) == 0) {
    NVLAR_WARN("%s: the loaded NCCL (%s) does not have this function; returning an error", name,
               real.path);
  }
}

const char *nvlar_missing_nccl_message(void) { return missing_message; }
