/*
 * confopts.h: the option table (lib/confopts.c) as the loader
 * (lib/config.c) reads it. Private to those two files: the rest of the
 * program sees options through config.h (conf_option, conf_line).
 */
#ifndef IDEM_CONFOPTS_H
#define IDEM_CONFOPTS_H

#include <stddef.h>
#include <stdint.h>

enum conf_sect { SECT_NONE, SECT_PROXY, SECT_REDIS, SECT_ADMIN, SECT_LOG,
                 SECT_ROUTE, SECT_BAD };

enum conf_type {
    T_STRING,    /* char[max] at off */
    T_LISTEN,    /* host:port -> char[256] at off, int at off2; flag: "off" */
    T_UPSTREAM,  /* http://host[:port] -> char[256] at off, int at off2 */
    T_REDIS_URL, /* redis://[:pw@]host[:port][/db] -> redis_* fields */
    T_DURATION,  /* int64_t ms at off */
    T_SIZE,      /* int64_t bytes at off */
    T_BOOL,      /* a bit field of struct route, off2 = CONF_BIT_*; off2 0: int at off */
    T_ENUM,      /* int at off, index into names */
    T_INT,       /* int at off */
    T_METHODS,   /* unsigned M_* bits at off */
    T_PATH,      /* route path + prefix bit */
    T_SCOPE,     /* route scope + scope_name */
    T_STATUS,    /* int at off: "original" (0) or min..max */
    T_MISMATCH,  /* int at off: 409 or 422 */
    T_HEADERS,   /* route fp_headers */
    T_RELEASE,   /* route release[] */
    T_NODES,     /* host:port, ... -> struct addr_nodes at off; off2: the default port */
    T_FILE,      /* a readable file's path -> char[max] at off; "" none */
};

enum { CONF_BIT_REQUIRE_KEY = 1, CONF_BIT_STORE_SET_COOKIE };
#define CONF_ALLOW_OFF 1          /* T_LISTEN: "off" means port 0 */
#define CONF_RESTART   2          /* a reload keeps the running value (restart to change) */

struct conf_opt {
    enum conf_sect sect;
    const char *name;
    enum conf_type type;
    size_t off, off2;
    int64_t min, max;             /* bounds; T_STRING: max is the buffer size */
    const char *def;              /* NULL: computed after parsing */
    const char *const *names;     /* T_ENUM */
    int flags;
};

/* Every option, in the order of the man page; conf_nopts rows
 * (CONF_MAX_OPTS at most). */
extern const struct conf_opt conf_opts[];
extern const int conf_nopts;
#define CONF_NOPTS conf_nopts

/* "proxy", "redis", "admin", "log" or "route". */
const char *conf_sect_name(enum conf_sect s);

#endif
