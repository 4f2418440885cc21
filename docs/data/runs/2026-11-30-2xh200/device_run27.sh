#!/usr/bin/env bash
# Device run 27 (2xH200): the gpu tests whose sizes follow the 1 MiB push chunk (timeout: a
# two-chunk push call that times out; epochs: calls up to 1.2 MB, so both push kernels
# alternate), and the emulated all-reduce test (quick).
source "$(dirname "$0")/device_common.sh" 27
pack() { cp /tmp/b/meson-logs/testlog.txt $L/ 2>/dev/null; tar czf "$OUT/run27.tgz" -C /tmp logs27; }
(cd /tmp/b && NVLAR_TEST_QUICK=1 timeout 150 meson test --suite gpu --no-rebuild --print-errorlogs timeout epochs allreduce >$L/gpu-tests.txt 2>&1)
echo "gpu tests exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' $L/gpu-tests.txt | sort -u
pack
