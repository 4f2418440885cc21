/* Marks the functions that libnvlar.so exports; everything else is hidden
 * (-fvisibility=hidden, and the version script plugin/libnvlar.map). */
#ifndef NVLAR_EXPORT_H
#define NVLAR_EXPORT_H

#define NVLAR_EXPORT __attribute__((visibility("default")))

#endif
