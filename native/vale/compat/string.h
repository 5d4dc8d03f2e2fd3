/* See stdint.h. */
#include <linux/string.h>
