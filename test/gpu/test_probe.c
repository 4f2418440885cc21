/* The peer-mapping probe kernel, on this GPU's own memory: it must carry the pattern to the
 * target and back. Proves that the build compiles and runs device code. */
#include <stdint.h>

#include "gpu_test.h"
#include "nvlar_kernels.h"

int main(void) {
  require_gpus(1);
  uint64_t *words = NULL;
  CHECK_CUDA(cudaMalloc((void **)&words, 2 * sizeof(uint64_t)));
  const uint64_t patterns[] = {0x0123456789abcdefull, 0, ~0ull, 0x8000000000000001ull};
  for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
    uint64_t poison[2] = {~patterns[i], ~patterns[i]}, result[2];
    CHECK_CUDA(cudaMemcpy(words, poison, sizeof(poison), cudaMemcpyHostToDevice));
    CHECK_CUDA(nvlar_probe_launch(&words[0], patterns[i], &words[1], 0));
    CHECK_CUDA(cudaMemcpy(result, words, sizeof(result), cudaMemcpyDeviceToHost));
    CHECK(result[0] == patterns[i]);
    CHECK(result[1] == patterns[i]);
  }
  CHECK_CUDA(cudaFree(words));
  printf("probe: %zu patterns carried\n", sizeof(patterns) / sizeof(patterns[0]));
  return 0;
}
