/* The C library headers the shared datapath code (parse.c, table.c, filter.c, frag.c,
 * reasons.c) includes, for a kernel build: each maps to what the kernel has. These are the
 * only concessions to the kernel; the rules themselves are compiled as they are. */
#ifndef MS_VALE_COMPAT_STDINT_H
#define MS_VALE_COMPAT_STDINT_H
#include <linux/limits.h>
#include <linux/types.h>
#ifndef INT64_MAX
#define INT64_MAX S64_MAX
#endif
#ifndef UINT32_MAX
#define UINT32_MAX U32_MAX
#endif
#endif
