/* See stdint.h. */
#include <linux/errno.h>
