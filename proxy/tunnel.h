/*
 * tunnel: a connection after a protocol switch (an Upgrade the upstream
 * answered with 101): the client's socket and the upstream's carry bytes
 * both ways, untouched, until either side has closed and what it sent is
 * delivered, a socket fails, or nothing moved either way for
 * client_timeout. One window each way: a side is not read while what it
 * sent waits, NETIO_WINDOW or more, to be written to the other.
 */
#ifndef IDEM_TUNNEL_H
#define IDEM_TUNNEL_H

#include <event2/util.h>

struct proxy;
struct evbuffer;

/*
 * Takes over both sockets. c_in: what the client sent that was not read
 * yet as HTTP (for the upstream); c_out: what is still to be written to
 * the client (the 101); u_early: what the upstream sent after its 101.
 * The buffers' contents are moved. 0, or -1 without memory (nothing taken).
 */
int tunnel_new(struct proxy *px, evutil_socket_t cfd, struct evbuffer *c_in,
               struct evbuffer *c_out, evutil_socket_t ufd, struct evbuffer *u_early);
/* Close every tunnel of the worker. */
void tunnel_free_all(struct proxy *px);

#endif
