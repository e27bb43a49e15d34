/*
 * config: the INI file (libinih) turned into a struct config.
 * Owns: one table of options (section, name, type, bounds, default) that
 * parsing, defaults, validation and `idemproxy -t` all read; ${ENV}
 * substitution; durations (ms s m h) and sizes (k m).
 * Does not own: sockets, Redis, anything on the event loop.
 */
#ifndef IDEM_CONFIG_H
#define IDEM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

#include "addr.h"
#include "http.h"

#define CONF_MAX_ROUTES 64
#define CONF_MAX_OPTS 96           /* rows of the option table (lib/confopts.c) */
#define CONF_MAX_FP_HEADERS 16

enum scope_kind { SCOPE_NONE, SCOPE_HEADER, SCOPE_JSON };
enum fp_body { FP_BODY_RAW, FP_BODY_JSON };
enum in_flight { IN_FLIGHT_REJECT, IN_FLIGHT_WAIT };
enum on_store_error { STORE_ERROR_REJECT, STORE_ERROR_PASS };
enum route_mode { MODE_ENFORCE, MODE_OBSERVE };
enum error_format { ERROR_FORMAT_JSON, ERROR_FORMAT_PROBLEM };
/* which Redis deployment [redis] names: url, sentinels or cluster_nodes */
enum redis_mode { REDIS_SINGLE, REDIS_SENTINEL, REDIS_CLUSTER };

struct route {
    char name[64];                 /* from [route NAME] */
    char path[256];                /* without a trailing "/ *" */
    unsigned prefix:1;             /* path was written "/x/ *": matches below it */
    unsigned require_key:1;        /* missing key: 400 (on) or pass (off) */
    unsigned store_set_cookie:1;   /* Set-Cookie kept in the stored answer */
    unsigned methods;              /* M_* bits, default M_POST */
    int64_t ttl_ms;                /* completed record lifetime, default 24h */
    int64_t lease_ms;              /* in-flight claim lifetime, default 60s */
    int64_t wait_timeout_ms;       /* in_flight = wait: bound, default 30s */
    enum scope_kind scope;         /* default none */
    char scope_name[128];          /* header name or JSON field */
    enum fp_body fingerprint_body; /* default raw */
    char fp_headers[CONF_MAX_FP_HEADERS][64]; /* default {"Authorization"} */
    int n_fp_headers;
    int replay_status;             /* 0: original */
    int mismatch_status;           /* 409 or 422 */
    enum in_flight in_flight;      /* default reject */
    enum on_store_error on_store_error; /* default reject */
    enum route_mode mode;          /* default enforce; observe: count, never answer */
    enum error_format error_format;     /* default json */
    int64_t max_body;              /* request body limit, default [proxy] max_body */
    int64_t max_store;             /* largest answer body stored, default 1m */
    unsigned char release[600];    /* release[status]: claim released, not stored.
                                      default 5xx, 408, 425, 429 */
    int key_max_len;               /* default 255 */
};

struct config {
    char path[1024];               /* the file it was read from */
    /* [proxy] */
    char listen_host[256];  int listen_port;     /* default 0.0.0.0:8080 */
    char upstream_host[256]; int upstream_port;  /* http://host:port only */
    int64_t upstream_timeout_ms;   /* whole request, default 30s */
    int64_t client_timeout_ms;     /* idle between requests, and a tunnel, default 60s */
    int64_t client_header_timeout_ms; /* a whole request head, default 10s */
    int64_t client_body_timeout_ms;   /* between two reads of a body, default 30s */
    int64_t send_timeout_ms;       /* between two writes of an answer, default 30s */
    int64_t drain_timeout_ms;      /* SIGTERM bound, default 30s */
    int64_t max_body;              /* default 1m */
    int64_t max_headers;           /* default 64k */
    int64_t passthrough_max_body;  /* other routes' bodies; 0: no limit (default) */
    int upstream_connections;      /* pool bound, default 256 */
    int workers;                  /* threads; 0: one per CPU */
    /* [redis] */
    char redis_host[256]; int redis_port; int redis_db; /* from url */
    int redis_url_tls;             /* the url is rediss:// */
    char redis_username[128];      /* ACL user, from url or `username`; "": none */
    char redis_password[256];      /* from url or `password` */
    char key_prefix[64];           /* default "idem:" */
    int64_t redis_timeout_ms;      /* per command, default 1s */
    int redis_tls;                 /* tls = on, or a rediss:// url */
    char tls_ca_file[1024];        /* "": the system store */
    char tls_cert_file[1024];      /* client certificate (mutual TLS), or "" */
    char tls_key_file[1024];
    char tls_server_name[256];     /* SNI and the name verified; "": the host */
    struct addr_nodes sentinels;   /* n = 0: not set */
    char sentinel_master[128];
    char sentinel_password[256];
    struct addr_nodes cluster_nodes; /* n = 0: not set */
    int replicas_ack;              /* WAIT for this many replicas; 0: none */
    int record_layout;             /* what a new claim writes: 1 hash, 2 string; default 1 */
    int64_t replicas_ack_timeout_ms; /* default 100ms */
    enum redis_mode redis_mode;    /* from which of url/sentinels/cluster_nodes is set */
    /* [admin] */
    char admin_host[256]; int admin_port; /* default 127.0.0.1:9901; port 0: off */
    char admin_token[256];         /* "": the record API needs no token */
    /* [log] */
    int log_level;                 /* LOG_* from log.h, default info */
    /* routes, in file order: the first match wins */
    struct route routes[CONF_MAX_ROUTES];
    int n_routes;
    int line[CONF_MAX_OPTS];       /* line each global option was set on, 0: default */
};

/*
 * Read and validate `path`. Returns a new config (caller frees with
 * conf_free) or NULL with "file:line: key: what is wrong" in err.
 */
struct config *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct config *c);

/* The line [section] name was set on in c's file; 0 when it took its default. */
int conf_line(const struct config *c, const char *section, const char *name);

/*
 * Reload. The options marked restart-only in the table (the listen
 * addresses, the Redis deployment and its TLS, key_prefix, workers, ...)
 * keep their running values; every other one applies.
 * conf_restart_changes writes the restart-only options whose values differ
 * between old and new, as "[proxy] workers, [redis] url", into out (size
 * n) and returns how many there are; conf_keep_restart copies those values
 * from old into new.
 */
int conf_restart_changes(const struct config *old, const struct config *new,
                         char *out, size_t n);
void conf_keep_restart(struct config *new, const struct config *old);

/* "30s" -> 30000; "1m" for a size -> 1048576. 0 ok, -1 bad. */
int conf_parse_duration(const char *s, int64_t *ms);
int conf_parse_size(const char *s, int64_t *bytes);

/* The other way: 30000 -> "30s", 1048576 -> "1m", as a file would say it. */
void conf_fmt_duration(int64_t ms, char *out, size_t n);
void conf_fmt_size(int64_t bytes, char *out, size_t n);

/*
 * One option of the table, described for people and tools (`idemproxy -T
 * options`, scripts/gen-docs, the docs test). The strings are static or in
 * the struct itself.
 */
struct conf_opt_info {
    const char *section;           /* proxy, redis, admin, log or route */
    const char *name;
    const char *type;              /* duration, size, int, bool, enum, string, ... */
    const char *def;               /* the default as written in a file; NULL when
                                      there is none (route path) or it is computed
                                      after parsing (route max_body) */
    char min[24];                  /* lower bound as written in a file; "" if none */
    char max[24];                  /* upper bound; a string's longest length */
    char values[96];               /* the words it takes, '|'-separated; "" if none */
    int restart;                   /* 1: a reload keeps the running value */
};

/* Option i of the table (0-based, table order) into out: 0, or -1 past the last. */
int conf_option(int i, struct conf_opt_info *out);

/* The table as a JSON array, one option per line: {"section", "name",
 * "type", "default", "min", "max", "values", "restart"} (null for NULL and ""
 * bounds, values a list). 0, or -1 on a write error or out of memory. */
int conf_write_options(FILE *f);

/* A duration in milliseconds, as every one here is kept, as a timeval. */
static inline struct timeval conf_ms_tv(int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

#endif
