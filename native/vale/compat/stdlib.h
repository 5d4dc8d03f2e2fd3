/* See stdint.h. The table grows and the fragment window is made on the control path
 * (process context, under the module's lock), never per frame: GFP_KERNEL is right. */
#ifndef MS_VALE_COMPAT_STDLIB_H
#define MS_VALE_COMPAT_STDLIB_H
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
static inline void *calloc(size_t n, size_t size) { return kvcalloc(n, size, GFP_KERNEL); }
static inline void *malloc(size_t size) { return kvmalloc(size, GFP_KERNEL); }
static inline void free(void *p) { kvfree(p); }
#endif
