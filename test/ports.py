"""Loopback listen ports for the tests and the benchmark: the one place
that picks them.

Ports come from below the kernel's ephemeral range (ip_local_port_range
starts at 32768), so an outgoing connection's source port, which the kernel
may hand out at any moment, can never collide with a port a test is about
to listen on. Each process starts at its own offset and never hands out the
same port twice."""
import os
import socket
import threading

HOST = "127.0.0.1"
_PORT_LO, _PORT_HI = 20000, 32000
_next_port = _PORT_LO + (os.getpid() * 37) % (_PORT_HI - _PORT_LO)
_lock = threading.Lock()       # callers may be threads


def free_port():
    with _lock:
        return _free_port()


def _free_port():
    global _next_port
    for _ in range(_PORT_HI - _PORT_LO):
        p = _next_port
        _next_port = _PORT_LO + (_next_port + 1 - _PORT_LO) % (_PORT_HI - _PORT_LO)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, p))
        except OSError:
            continue
        finally:
            s.close()
        return p
    raise RuntimeError("no free loopback port in %d-%d" % (_PORT_LO, _PORT_HI))
