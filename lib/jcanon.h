/*
 * jcanon: the canonical text of a JSON body, which fingerprint_body = json
 * hashes. Object members sorted by key (bytewise), a repeated key's last
 * value kept, no white space, strings with only the escapes JSON requires
 * (others written as UTF-8), numbers written as jansson 2.14 writes them.
 *
 * It accepts exactly the documents jansson's json_loadb(JSON_DECODE_ANY)
 * accepts and writes exactly the bytes of json_dumpb(JSON_SORT_KEYS |
 * JSON_COMPACT | JSON_ENCODE_ANY), which is what earlier versions hashed:
 * fingerprints stored before still match (test_jcanon and fuzz_fingerprint
 * compare the two). One pass over the body, no tree, no allocation for
 * bodies of a few KB.
 */
#ifndef IDEM_JCANON_H
#define IDEM_JCANON_H

#include <stddef.h>

/* jansson's JSON_PARSER_MAX_DEPTH: deeper documents are refused */
#define JCANON_MAX_DEPTH 2048

/* an object member: its decoded key in keys, its text ("key":value) in buf */
struct jc_member {
    size_t koff, klen, toff, tlen;
};

/* a piece of buf */
struct jc_span {
    size_t off, len;
};

/* an object whose members came out of key order: where it is in buf, and
 * its members' texts in the order they are written (spans[s0..s0+n)) */
struct jc_object {
    size_t open, close, s0, n;
};

struct jcanon {
    const char *text;           /* the canonical text, text[0..len) */
    size_t len;
    /* private: growable buffers, starting inside this struct */
    char *buf, *out, *keys;     /* text as read (objects unsorted); as written */
    struct jc_member *mem;      /* members of the objects being read */
    struct jc_span *spans;
    struct jc_object *obj;
    size_t buf_len, buf_cap, out_cap, keys_len, keys_cap, n_mem, mem_cap;
    size_t n_spans, spans_cap, n_obj, obj_cap;
    int depth;
    char buf0[2048], out0[2048], keys0[512];
    struct jc_member mem0[32];
    struct jc_span spans0[32];
    struct jc_object obj0[8];
};

enum { JCANON_OK = 0, JCANON_INVALID = -1, JCANON_NOMEM = -2 };

/* Canonicalize in[0..n) into jc->text. JCANON_OK, JCANON_INVALID (not a
 * JSON document) or JCANON_NOMEM. Call jcanon_done afterwards in every case. */
int jcanon(struct jcanon *jc, const char *in, size_t n);
void jcanon_done(struct jcanon *jc);

#endif
