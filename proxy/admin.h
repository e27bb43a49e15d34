/*
 * admin: the admin listener (/healthz, /readyz, /metrics, /records), on
 * the main thread, through evhttp. Reads every worker's counters; has its
 * own Redis connection (pc->store) for /readyz and the record API.
 */
#ifndef IDEM_ADMIN_H
#define IDEM_ADMIN_H

#include <stddef.h>

#include "proxy.h"

/* 0, or -1 with a message (the port is taken). [admin] listen = off: 0. */
int admin_open(struct proc *pc, char *err, size_t errlen);
void admin_close(struct proc *pc);

#endif
