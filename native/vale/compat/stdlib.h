/* See stdint.h. The table grows and the fragment window is made on the control path
 * (process context, under the module's lock), never per frame: GFP_KERNEL is right.
 * The module's own state and reservations come from here too, so that one counter holds
 * every allocation the module has not freed: unloading prints it, and it must be 0. */
#ifndef MS_VALE_COMPAT_STDLIB_H
#define MS_VALE_COMPAT_STDLIB_H
#include <linux/atomic.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
extern atomic_long_t ms_vale_outstanding;   /* ms_vale.c */
static inline void *ms_vale_counted(void *p)
{
    if (p)
        atomic_long_inc(&ms_vale_outstanding);
    return p;
}
static inline void *calloc(size_t n, size_t size)
{
    return ms_vale_counted(kvcalloc(n, size, GFP_KERNEL));
}
static inline void *malloc(size_t size) { return ms_vale_counted(kvmalloc(size, GFP_KERNEL)); }
static inline void free(void *p)
{
    if (p)
        atomic_long_dec(&ms_vale_outstanding);
    kvfree(p);
}
#endif
