# idemproxy container image: docker build -t idemproxy:1.0 .
#
# Two stages on Debian 12 (bookworm), the distribution idemproxy is built and
# tested on. The build stage installs the build dependencies with
# scripts/deps.sh (the one list of packages that make, make test and CI use)
# and runs make; the runtime stage has only the shared libraries the binary
# links against, the binary, and a default config, and runs as uid 10001.
#
# The config baked in is the demo one (conf/idemproxy.conf): it listens on
# loopback and expects Redis and the API on 127.0.0.1. Mount your own at
# /etc/idemproxy/idemproxy.conf (conf/kubernetes/ does, from a ConfigMap);
# check a config with `docker run --rm -v $PWD/my.conf:/c.conf idemproxy:1.0 -t -c /c.conf`.

FROM debian:12-slim AS build
WORKDIR /src
# deps.sh first, alone, so the package layer is cached across source changes.
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make \
    && proxy/idemproxy -V \
    && proxy/idemproxy -t -c conf/idemproxy.conf

FROM debian:12-slim
# The runtime half of deps.sh's -dev packages: exactly the sonames that
# `ldd proxy/idemproxy` lists (libevent-2.1.so.7, libevent_openssl-2.1.so.7,
# libssl.so.3, libcrypto.so.3, libhiredis.so.0.14, libxxhash.so.0,
# libinih.so.1, libjansson.so.4), besides libc; and ca-certificates, the
# system store a TLS Redis is verified against when tls_ca_file is not set.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libevent-2.1-7 libevent-openssl-2.1-7 libssl3 ca-certificates libhiredis0.14 \
       libxxhash0 libinih1 libjansson4 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 idemproxy \
    && useradd --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin idemproxy
COPY --from=build /src/proxy/idemproxy /usr/local/bin/idemproxy
COPY conf/idemproxy.conf /etc/idemproxy/idemproxy.conf
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# 8080: the proxy ([proxy] listen); 9901: /healthz /readyz /metrics ([admin] listen).
EXPOSE 8080 9901
# idemproxy handles SIGTERM itself (stop accepting, drain, exit 0), also as PID 1.
ENTRYPOINT ["/usr/local/bin/idemproxy"]
CMD ["-c", "/etc/idemproxy/idemproxy.conf"]
