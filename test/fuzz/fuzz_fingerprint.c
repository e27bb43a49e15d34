/*
 * fuzz_fingerprint: the canonical JSON text fingerprints hash (jcanon in
 * lib/jcanon.c).
 *
 * Properties, for every input:
 *  - jcanon agrees with jansson (json_loadb with JSON_DECODE_ANY, then
 *    json_dumpb with JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY), which
 *    earlier versions hashed: both refuse the input, or both accept it and
 *    write the same bytes;
 * and for every input accepted:
 *  - key order and white space do not matter: the document rebuilt with
 *    every object's keys in reverse order, dumped indented (JSON_INDENT(2))
 *    and dumped compact, both unsorted, and the original dumped with every
 *    non-ASCII character and '/' escaped (JSON_ENSURE_ASCII |
 *    JSON_ESCAPE_SLASH), have the same canonical text as the input;
 *  - the canonical text loses nothing: parsed again it is json_equal to the
 *    input, so two bodies with one fingerprint text are the same document.
 */
#include "fuzz.h"
#include "jcanon.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A deep copy of v with every object's keys inserted in reverse order. */
static json_t *fuzz_reversed(const json_t *v)
{
    if (json_is_array(v)) {
        json_t *a = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(a, fuzz_reversed(json_array_get(v, i)));
        return a;
    }
    if (json_is_object(v)) {
        size_t n = json_object_size(v), i = 0;
        const char **keys = malloc((n ? n : 1) * sizeof(*keys));
        json_t **vals = malloc((n ? n : 1) * sizeof(*vals));
        const char *k;
        json_t *x;
        if (!keys || !vals)
            abort();
        json_object_foreach((json_t *)v, k, x) {
            keys[i] = k;
            vals[i] = x;
            i++;
        }
        json_t *o = json_object();
        while (i-- > 0)
            json_object_set_new(o, keys[i], fuzz_reversed(vals[i]));
        free(keys);
        free(vals);
        return o;
    }
    return json_deep_copy(v);
}

/* v dumped with flags, parsed again (it must be v), then canonicalized:
 * the same text as want? */
static int fuzz_same_canon(const json_t *v, size_t flags, const json_t *orig,
                           const char *want, size_t wlen)
{
    char *txt = json_dumps(v, flags | JSON_ENCODE_ANY);
    FUZZ_CHECK(txt != NULL);
    json_error_t jerr;
    json_t *again = json_loads(txt, JSON_DECODE_ANY, &jerr);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(json_equal(again, orig));
    json_decref(again);
    struct jcanon jc;
    FUZZ_CHECK(jcanon(&jc, txt, strlen(txt)) == JCANON_OK);
    int same = jc.len == wlen && memcmp(jc.text, want, wlen) == 0;
    jcanon_done(&jc);
    free(txt);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t canon_flags = JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY;
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    struct jcanon jc;
    int rc = jcanon(&jc, (const char *)data, size);
    if (!doc) {
        FUZZ_CHECK(rc == JCANON_INVALID);
        jcanon_done(&jc);
        return 0;
    }
    FUZZ_CHECK(rc == JCANON_OK);
    size_t wlen = json_dumpb(doc, NULL, 0, canon_flags);
    char *want = malloc(wlen + 1);
    FUZZ_CHECK(want != NULL && json_dumpb(doc, want, wlen, canon_flags) == wlen);
    FUZZ_CHECK(jc.len == wlen && memcmp(jc.text, want, wlen) == 0);
    jcanon_done(&jc);

    json_t *rev = fuzz_reversed(doc);
    FUZZ_CHECK(json_equal(rev, doc));
    FUZZ_CHECK(fuzz_same_canon(rev, JSON_INDENT(2), doc, want, wlen));
    FUZZ_CHECK(fuzz_same_canon(rev, JSON_COMPACT, doc, want, wlen));
    FUZZ_CHECK(fuzz_same_canon(doc, JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH, doc, want, wlen));
    json_decref(rev);

    /* The canonical text (what is hashed) parses back to the same document. */
    json_t *back = json_loadb(want, wlen, JSON_DECODE_ANY, &jerr);
    FUZZ_CHECK(back != NULL && json_equal(back, doc));
    json_decref(back);
    free(want);
    json_decref(doc);
    return 0;
}
