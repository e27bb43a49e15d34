"""A minimal pipelining RESP (Redis) client for the tests, the chaos run and
the benchmark: one connection, commands as arguments, replies as Python
values (bulk strings as bytes). Python standard library only."""
import socket


class RedisError(RuntimeError):
    """An error reply (-ERR ...)."""


class RedisClient:
    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def pipeline(self, cmds, chunk=500):
        """Send many commands, return their replies (errors as RedisError)."""
        out = []
        for i in range(0, len(cmds), chunk):
            part = cmds[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            out += [self.read() for _ in part]
        return out

    def cmd(self, *args):
        """One command; an error reply is raised."""
        r = self.pipeline([args])[0]
        if isinstance(r, RedisError):
            raise r
        return r

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        line = line.rstrip(b"\r\n")
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError("bad reply %r" % line)


def command(port, *args, password=None, timeout=3.0):
    """One command on a fresh connection (after AUTH, with a password)."""
    with RedisClient(port, timeout=timeout) as rc:
        if password:
            rc.cmd("AUTH", password)
        return rc.cmd(*args)
