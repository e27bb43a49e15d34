/*
 * log.c owns the process's log sink (stderr): the current level, and
 * the building of one JSON object per line in a struct logline, written with
 * a single write(2). Output is always valid ASCII JSON: every string is
 * escaped, bytes >= 0x80 included, and a line that would overflow its buffer
 * drops the fields that do not fit and ends with "truncated":true.
 */
#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_cur_level = LOG_INFO;

const char *const log_level_names[] = { "debug", "info", "warn", "error", NULL };

/* Room always kept free for a closing quote, ,"truncated":true and }\n. */
#define LOG_TAIL ",\"truncated\":true}\n"
#define LOG_RESERVE (sizeof(LOG_TAIL) - 1 + 1)
#define LOG_LIMIT (sizeof(((struct logline *)0)->buf) - LOG_RESERVE)

void log_set_level(int level)
{
    if (level < LOG_DEBUG)
        level = LOG_DEBUG;
    if (level > LOG_ERROR)
        level = LOG_ERROR;
    /* set by the main thread on reload, read by every worker */
    __atomic_store_n(&log_cur_level, level, __ATOMIC_RELAXED);
}

int log_enabled(int level)
{
    return level >= __atomic_load_n(&log_cur_level, __ATOMIC_RELAXED);
}

/* Appends n raw bytes if they fit under the limit; 0 if they do not. */
static int log_put(struct logline *l, const char *s, size_t n)
{
    if (l->len + n > LOG_LIMIT)
        return 0;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 1;
}

/* Appends the JSON-escaped form of s[0..n), one whole escape at a time;
 * returns 0 (having appended a prefix) if the rest does not fit. */
static int log_escape(struct logline *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t en;
        switch (c) {
        case '"':  e[0] = '\\'; e[1] = '"';  en = 2; break;
        case '\\': e[0] = '\\'; e[1] = '\\'; en = 2; break;
        case '\n': e[0] = '\\'; e[1] = 'n';  en = 2; break;
        case '\r': e[0] = '\\'; e[1] = 'r';  en = 2; break;
        case '\t': e[0] = '\\'; e[1] = 't';  en = 2; break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                e[0] = '\\'; e[1] = 'u'; e[2] = '0'; e[3] = '0';
                e[4] = hex[c >> 4]; e[5] = hex[c & 15];
                en = 6;
            } else {
                e[0] = (char)c;
                en = 1;
            }
        }
        if (!log_put(l, e, en))
            return 0;
    }
    return 1;
}

/* Starts a field ,"key": ; on failure marks the line truncated. Returns the
 * length to roll back to, or (size_t)-1 if the line is already truncated. */
static size_t log_key(struct logline *l, const char *key)
{
    if (l->truncated)
        return (size_t)-1;
    size_t mark = l->len;
    if (!key)
        key = "";
    if (log_put(l, ",\"", 2) && log_escape(l, key, strlen(key)) &&
        log_put(l, "\":", 2))
        return mark;
    l->len = mark;
    l->truncated = 1;
    return (size_t)-1;
}

static void log_field_done(struct logline *l, size_t mark, int ok)
{
    if (!ok) {
        l->len = mark;
        l->truncated = 1;
    }
}

void log_begin(struct logline *l, int level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char t[64];

    l->len = 0;
    l->truncated = 0;
    if (level < LOG_DEBUG)
        level = LOG_DEBUG;
    if (level > LOG_ERROR)
        level = LOG_ERROR;
    l->level = level;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(t + n, sizeof t - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    if (m > 0)
        n += (size_t)m;

    log_put(l, "{\"ts\":\"", 7);
    log_put(l, t, n);
    log_put(l, "\",\"level\":\"", 11);
    log_put(l, log_level_names[level], strlen(log_level_names[level]));
    log_put(l, "\",\"msg\":\"", 9);
    if (!msg)
        msg = "";
    if (!log_escape(l, msg, strlen(msg)))
        l->truncated = 1;
    /* The closing quote may use the byte kept in the reserve for it. */
    l->buf[l->len++] = '"';
}

void log_strn(struct logline *l, const char *key, const char *val, size_t n)
{
    size_t mark = log_key(l, key);
    if (mark == (size_t)-1)
        return;
    if (!val) {
        log_field_done(l, mark, log_put(l, "null", 4));
        return;
    }
    log_field_done(l, mark, log_put(l, "\"", 1) && log_escape(l, val, n) &&
                            log_put(l, "\"", 1));
}

void log_str(struct logline *l, const char *key, const char *val)
{
    log_strn(l, key, val, val ? strlen(val) : 0);
}

void log_int(struct logline *l, const char *key, long long val)
{
    size_t mark = log_key(l, key);
    if (mark == (size_t)-1)
        return;
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", val);
    log_field_done(l, mark, n > 0 && log_put(l, num, (size_t)n));
}

void log_ms(struct logline *l, const char *key, double ms)
{
    size_t mark = log_key(l, key);
    if (mark == (size_t)-1)
        return;
    if (!isfinite(ms)) { /* JSON has no NaN or Infinity */
        log_field_done(l, mark, log_put(l, "null", 4));
        return;
    }
    char num[64];
    int n = snprintf(num, sizeof num, "%.3f", ms);
    log_field_done(l, mark,
                   n > 0 && (size_t)n < sizeof num && log_put(l, num, (size_t)n));
}

void log_end(struct logline *l)
{
    /* The reserve guarantees room for both tails. */
    if (l->truncated) {
        memcpy(l->buf + l->len, ",\"truncated\":true", 17);
        l->len += 17;
    }
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    if (!log_enabled(l->level))
        return;
    ssize_t w;
    do {
        w = write(STDERR_FILENO, l->buf, l->len);
    } while (w < 0 && errno == EINTR);
}

void log_say(int level, const char *msg, const char *detail)
{
    struct logline l;
    if (!log_enabled(level))
        return;
    log_begin(&l, level, msg);
    if (detail)
        log_str(&l, "detail", detail);
    log_end(&l);
}

int log_limit_pass(struct log_limit *l, long now_sec, int per_sec,
                   unsigned long *dropped)
{
    if (now_sec != l->sec) {
        l->sec = now_sec;
        l->n = 0;
    }
    if (l->n >= per_sec) {
        l->dropped++;
        return 0;
    }
    l->n++;
    *dropped = l->dropped;
    l->dropped = 0;
    return 1;
}
