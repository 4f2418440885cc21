/* Our declarations of NCCL 2.28's tuner plugin ABI (src/include/plugin/tuner/tuner_v2..v5.h and
 * nccl_common.h of NCCL 2.28.9): layouts and values are facts of that ABI, checked by the static
 * asserts below where the layout is known. */
#ifndef NVLAR_TUNER_ABI_H
#define NVLAR_TUNER_ABI_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include <nccl.h>

/* NCCL's logger (ncclDebugLogger_t) and its levels and subsystem flags. */
typedef enum {
  NVLAR_NCCL_LOG_NONE = 0,
  NVLAR_NCCL_LOG_VERSION = 1,
  NVLAR_NCCL_LOG_WARN = 2,
  NVLAR_NCCL_LOG_INFO = 3,
  NVLAR_NCCL_LOG_ABORT = 4,
  NVLAR_NCCL_LOG_TRACE = 5,
} nvlar_nccl_log_level;
#define NVLAR_NCCL_LOG_SUBSYS_INIT 0x1ul
#define NVLAR_NCCL_LOG_SUBSYS_TUNING 0x40ul
typedef void (*nvlar_nccl_logger)(nvlar_nccl_log_level level, unsigned long flags,
                                  const char *file, int line, const char *fmt, ...);

/* ncclFunc_t values the tuner sees. */
enum {
  NVLAR_FUNC_BROADCAST = 0,
  NVLAR_FUNC_REDUCE = 1,
  NVLAR_FUNC_ALLGATHER = 2,
  NVLAR_FUNC_REDUCESCATTER = 3,
  NVLAR_FUNC_ALLREDUCE = 4,
};

/* Cost-table indices: NCCL_ALGO_TREE .. NCCL_ALGO_PAT, NCCL_PROTO_LL .. NCCL_PROTO_SIMPLE. */
enum { NVLAR_ALGO_TREE = 0, NVLAR_ALGO_RING = 1, NVLAR_ALGO_COLLNET_DIRECT = 2,
       NVLAR_ALGO_COLLNET_CHAIN = 3, NVLAR_ALGO_NVLS = 4, NVLAR_ALGO_NVLS_TREE = 5,
       NVLAR_ALGO_PAT = 6, NVLAR_NUM_ALGORITHMS = 7 };
enum { NVLAR_PROTO_LL = 0, NVLAR_PROTO_LL128 = 1, NVLAR_PROTO_SIMPLE = 2, NVLAR_NUM_PROTOCOLS = 3 };
#define NVLAR_ALGO_PROTO_IGNORE (-1.0f) /* cost of an entry NCCL cannot use */

typedef struct {
  int nNvlDomains;
  int minRanksPerNvlDomain;
  int maxRanksPerNvlDomain;
} nvlar_nvl_domain_info_v5;

typedef struct {
  double baseLatencies[7][3];
  double hwLatencies[3][7][3];
  double llMaxBws[4][3];
  double perChMaxRingLL128Bws[4][3];
  double perChMaxTreeLL128Bws[4][3];
  double perChMaxTreeBws[4][3];
  double perChMaxNVLSTreeBws[4][3];
} nvlar_tuner_constants_v5;

typedef struct {
  const char *name;
  ncclResult_t (*init)(void **ctx, uint64_t commId, size_t nRanks, size_t nNodes,
                       nvlar_nccl_logger logFunction, nvlar_nvl_domain_info_v5 *nvlDomainInfo,
                       nvlar_tuner_constants_v5 *constants);
  ncclResult_t (*getCollInfo)(void *context, int collType, size_t nBytes, int numPipeOps,
                              float **collCostTable, int numAlgo, int numProto, int regBuff,
                              int *nChannels);
  ncclResult_t (*finalize)(void *context);
} nvlar_tuner_v5;

typedef struct {
  const char *name;
  ncclResult_t (*init)(size_t nRanks, size_t nNodes, nvlar_nccl_logger logFunction, void **context);
  ncclResult_t (*getCollInfo)(void *context, int collType, size_t nBytes, int numPipeOps,
                              float **collCostTable, int numAlgo, int numProto, int regBuff,
                              int *nChannels);
  ncclResult_t (*destroy)(void *context);
} nvlar_tuner_v4;

typedef struct {
  const char *name;
  ncclResult_t (*init)(size_t nRanks, size_t nNodes, nvlar_nccl_logger logFunction, void **context);
  ncclResult_t (*getCollInfo)(void *context, int collType, size_t nBytes, int numPipeOps,
                              float **collCostTable, int numAlgo, int numProto, int *nChannels);
  ncclResult_t (*destroy)(void *context);
} nvlar_tuner_v3;

typedef struct {
  const char *name;
  ncclResult_t (*init)(size_t nRanks, size_t nNodes, nvlar_nccl_logger logFunction, void **context);
  ncclResult_t (*getCollInfo)(void *context, int collType, size_t nBytes, int collNetSupport,
                              int nvlsSupport, int numPipeOps, int *algorithm, int *protocol,
                              int *nChannels);
  ncclResult_t (*destroy)(void *context);
} nvlar_tuner_v2;

/* Every version is a name and three function pointers, in this order. */
#define NVLAR_CHECK_TUNER_LAYOUT(type, last)                                                 \
  static_assert(sizeof(type) == 4 * sizeof(void *), #type " size");                          \
  static_assert(offsetof(type, name) == 0 && offsetof(type, init) == sizeof(void *) &&       \
                    offsetof(type, getCollInfo) == 2 * sizeof(void *) &&                    \
                    offsetof(type, last) == 3 * sizeof(void *),                              \
                #type " layout")
NVLAR_CHECK_TUNER_LAYOUT(nvlar_tuner_v5, finalize);
NVLAR_CHECK_TUNER_LAYOUT(nvlar_tuner_v4, destroy);
NVLAR_CHECK_TUNER_LAYOUT(nvlar_tuner_v3, destroy);
NVLAR_CHECK_TUNER_LAYOUT(nvlar_tuner_v2, destroy);
static_assert(sizeof(nvlar_nvl_domain_info_v5) == 12, "ncclNvlDomainInfo_v5_t size");
static_assert(sizeof(nvlar_tuner_constants_v5) == 144 * sizeof(double), "ncclTunerConstants_v5_t size");

#endif
