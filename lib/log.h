/*
 * log: one JSON object per line on stderr. Builds a line in a fixed buffer
 * and writes it with one write(2). Never pass it a raw key, body or
 * credential: log a hash.
 */
#ifndef IDEM_LOG_H
#define IDEM_LOG_H

#include <stddef.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

struct logline {
    char buf[2048];
    size_t len;
    int level;
    unsigned truncated:1;
};

/* "debug" "info" "warn" "error", by level, then NULL: the names the log
 * lines carry and the config's [log] level takes. */
extern const char *const log_level_names[];

void log_set_level(int level);
int log_enabled(int level);

/* {"ts":"2026-...Z","level":"info","msg":msg */
void log_begin(struct logline *l, int level, const char *msg);
void log_str(struct logline *l, const char *key, const char *val); /* escaped */
void log_strn(struct logline *l, const char *key, const char *val, size_t n);
void log_int(struct logline *l, const char *key, long long val);
void log_ms(struct logline *l, const char *key, double ms); /* 3 decimals */
/* closes the object, writes the line (if level enabled) */
void log_end(struct logline *l);

/* Shorthand: a line with msg and optional detail string. */
void log_say(int level, const char *msg, const char *detail);

#endif
