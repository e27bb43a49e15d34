/*
 * server: a worker's client listener. Owns binding the shared port
 * (SO_REUSEPORT), accepting (a conn per client, conn.c), the client-side
 * timeouts and limits as the config sets them, and where a parsed request
 * goes (px->dispatch: req_start). Does not own: reading or framing
 * (conn.c), what a request means (req.c).
 */
#ifndef IDEM_SERVER_H
#define IDEM_SERVER_H

#include <stddef.h>

#include "proxy.h"

/* Fails (with a message) when another process holds the port. */
int server_check_port(const struct config *c, char *err, size_t errlen);
int server_open(struct proxy *px, char *err, size_t errlen);
/* The config's client timeouts and limits, again after a reload. */
void server_apply_limits(struct proxy *px);
/* Stop accepting, and close the connections that wait for a request. */
void server_stop_accepting(struct proxy *px);
/* Every connection and tunnel closed (the worker is exiting). */
void server_close(struct proxy *px);

#endif
