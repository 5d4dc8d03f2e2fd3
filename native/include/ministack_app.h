/* MiniStack for C applications: attach to ports of `ministack daemon` over its control
 * socket, then move frames with the ms_app_* calls of ministack.h (shared memory only).
 *
 *   char err[256];
 *   ms_client *c = ms_client_connect("/run/ministack.sock", err, sizeof(err));
 *   ms_app *port = ms_client_port(c, "app1", 0, err, sizeof(err));
 *   ms_client_bind(c, "app1", "10.0.0.2", "udp", 5000, err, sizeof(err));
 *   ms_app_send(port, frames, lens, n, -1);
 *
 * Build with the objects of native/ (make -C native: build/libministack_app.a) and -lpthread.
 */
#ifndef MINISTACK_APP_H
#define MINISTACK_APP_H

#include <stddef.h>
#include <stdint.h>

#include "ministack.h"

typedef struct ms_client ms_client;

/* Connect and say hello; NULL with err filled on failure. */
ms_client *ms_client_connect(const char *path, char *err, size_t errlen);
void ms_client_close(ms_client *c);
/* The NIC's MAC as 6 bytes (the only source MAC a port may use). */
const uint8_t *ms_client_mac(ms_client *c);
/* Create a port (mtu 0: the switch's default) and map its memory. */
ms_app *ms_client_port(ms_client *c, const char *name, uint32_t mtu, char *err, size_t errlen);
/* Bind (ip, protocol name or number, port) on one of your ports. 0, or -1 with err
 * holding the daemon's reason and message (e.g. "in-use: udp 10.0.0.2:5000 is ..."). */
int ms_client_bind(ms_client *c, const char *port, const char *ip, const char *protocol,
                   int l4port, char *err, size_t errlen);

#endif
