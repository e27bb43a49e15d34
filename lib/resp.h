/*
 * resp: the Redis protocol (RESP2) as idemproxy writes it, and what an
 * error reply means. Commands are built here, by hand, into one growing
 * buffer; replies are parsed by hiredis's reader (redisReader), whose
 * redisReply trees the other lib/ modules read. Pure functions; no sockets.
 */
#ifndef IDEM_RESP_H
#define IDEM_RESP_H

#include <stddef.h>

/* The arguments of a command, RESP-encoded ($<len>\r\n<bytes>\r\n each). */
struct resp_buf {
    char *p;
    size_t len, cap;
    int argc;
};

/* Empty it (keeping its memory), or free it. */
void resp_reset(struct resp_buf *b);
void resp_free(struct resp_buf *b);
/* Append one argument; -1 when out of memory (b unchanged). */
int resp_arg(struct resp_buf *b, const void *s, size_t n);
int resp_arg_str(struct resp_buf *b, const char *s);
int resp_arg_int(struct resp_buf *b, long long v);
/* Append an argument of n bytes and return where its bytes go, for the
 * caller to fill; NULL when out of memory. */
char *resp_arg_room(struct resp_buf *b, size_t n);

/* A whole command from its arguments, into b (reset first). -1 on OOM. */
int resp_command(struct resp_buf *b, int argc, const char *const *argv);

/*
 * The head of a command whose arguments are in b: "*<2 + b->argc>" then the
 * command name and a first argument (EVALSHA and a sha, say), into out
 * (cap bytes). Returns its length, 0 when it does not fit.
 */
size_t resp_head(char *out, size_t cap, int argc_after, const char *name,
                 const char *first, size_t first_len);

struct redisReader;

/* Longest array a reply may hold: a larger one is a protocol error. */
#define RESP_MAX_ELEMENTS (1 << 20)

/*
 * A hiredis reader whose replies are hiredis's own (free them with
 * freeReplyObject), except that an array header larger than
 * RESP_MAX_ELEMENTS makes the reader fail instead of allocating its
 * elements (hiredis 0.14 would calloc up to INT_MAX pointers at once for
 * "*2147483647"). NULL when out of memory.
 */
struct redisReader *resp_reader_new(void);

/* What an error reply asks of the client. */
enum resp_err {
    RESP_ERR_OTHER,
    RESP_ERR_MOVED,       /* the slot lives at another node: update, resend */
    RESP_ERR_ASK,         /* being migrated: resend once there, after ASKING */
    RESP_ERR_TRYAGAIN,    /* cluster: try again later (row 10) */
    RESP_ERR_CLUSTERDOWN, /* cluster: slots not served (row 10) */
    RESP_ERR_NOSCRIPT,    /* the script is not loaded there: EVAL it */
    RESP_ERR_READONLY,    /* a replica: the master was demoted */
    RESP_ERR_LOADING,     /* loading its data set */
    RESP_ERR_MASTERDOWN,  /* a replica whose master is down */
    RESP_ERR_OOM,         /* maxmemory reached */
    RESP_ERR_AUTH,        /* NOAUTH, WRONGPASS, NOPERM: credentials or ACL */
    RESP_ERR_BUSY,        /* a script is running too long */
    RESP_ERR_WRONGTYPE,   /* the key holds another type (a record of layout 1) */
};

/* Where a MOVED or ASK points. host "" means the node that answered. */
struct resp_redirect {
    int slot;
    char host[256];
    int port;
};

/*
 * Classify the error reply s (len bytes, without the '-'). For MOVED and
 * ASK, *to gets the slot and address; a malformed one is RESP_ERR_OTHER.
 */
enum resp_err resp_error_kind(const char *s, size_t len, struct resp_redirect *to);

#endif
