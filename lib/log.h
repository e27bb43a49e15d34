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

/*
 * A bound on how many lines of one kind are written a second (repeated
 * refusals from a client must not flood the log). log_limit_pass: 1 when
 * this line may be written; then *dropped is how many were not since the
 * last one that was (0 if none), for that line to report.
 */
struct log_limit {
    long sec;                      /* the second being counted */
    int n;                         /* lines written in it */
    unsigned long dropped;         /* lines not written since the last one */
};
int log_limit_pass(struct log_limit *l, long now_sec, int per_sec,
                   unsigned long *dropped);

/* Shorthand: a line with msg and optional detail string. */
void log_say(int level, const char *msg, const char *detail);

#endif
