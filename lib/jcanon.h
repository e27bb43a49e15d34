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

/* one object member being sorted: its decoded key in keys, its text
 * ("key":value) in text */
struct jc_member {
    size_t koff, klen, toff, tlen;
};

struct jcanon {
    char *text;                 /* the canonical text, text[0..len) */
    size_t len;
    /* private: growable buffers, starting inside this struct */
    char *keys, *tmp;
    struct jc_member *mem;
    size_t text_cap, keys_len, keys_cap, tmp_cap, n_mem, mem_cap;
    int depth;
    char text0[2048], keys0[512];
    struct jc_member mem0[32];
};

enum { JCANON_OK = 0, JCANON_INVALID = -1, JCANON_NOMEM = -2 };

/* Canonicalize in[0..n) into jc->text. JCANON_OK, JCANON_INVALID (not a
 * JSON document) or JCANON_NOMEM. Call jcanon_done afterwards in every case. */
int jcanon(struct jcanon *jc, const char *in, size_t n);
void jcanon_done(struct jcanon *jc);

#endif
