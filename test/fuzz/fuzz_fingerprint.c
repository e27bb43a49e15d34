/*
 * fuzz_fingerprint: the canonical-JSON fingerprint (fp_field_json in
 * lib/key.c) over bodies parsed as the proxy parses them (jansson,
 * json_loadb with JSON_DECODE_ANY).
 *
 * Properties, for every input jansson accepts:
 *  - key order and white space do not matter: the document rebuilt with
 *    every object's keys in reverse order, dumped indented (JSON_INDENT(2))
 *    and dumped compact, both unsorted, and the original dumped with
 *    \uXXXX escapes (JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH), each parsed
 *    again, have the same fingerprint as the input;
 *  - the canonical text loses nothing: parsed again it is json_equal to the
 *    input, so two bodies with one fingerprint text are the same document.
 */
#include "fuzz.h"
#include "key.h"

#include <stdlib.h>
#include <string.h>

static struct fp_state *fuzz_fp;

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

static struct fp fuzz_digest(const json_t *v)
{
    fp_reset(fuzz_fp);
    FUZZ_CHECK(fp_field_json(fuzz_fp, v) == 0);
    return fp_digest(fuzz_fp);
}

/* Dump v with flags, parse it again, and return its fingerprint. */
static struct fp fuzz_redump(const json_t *v, size_t flags, const json_t *orig)
{
    char *txt = json_dumps(v, flags | JSON_ENCODE_ANY);
    FUZZ_CHECK(txt != NULL);
    json_error_t jerr;
    json_t *again = json_loads(txt, JSON_DECODE_ANY, &jerr);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(json_equal(again, orig));
    struct fp f = fuzz_digest(again);
    json_decref(again);
    free(txt);
    return f;
}

static int fuzz_fp_eq(struct fp a, struct fp b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    if (!fuzz_fp && !(fuzz_fp = fp_new()))
        abort();
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!doc)
        return 0;
    struct fp f0 = fuzz_digest(doc);

    json_t *rev = fuzz_reversed(doc);
    FUZZ_CHECK(json_equal(rev, doc));
    FUZZ_CHECK(fuzz_fp_eq(fuzz_digest(rev), f0));
    FUZZ_CHECK(fuzz_fp_eq(fuzz_redump(rev, JSON_INDENT(2), doc), f0));
    FUZZ_CHECK(fuzz_fp_eq(fuzz_redump(rev, JSON_COMPACT, doc), f0));
    FUZZ_CHECK(fuzz_fp_eq(fuzz_redump(doc, JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH, doc), f0));
    json_decref(rev);

    /* The canonical text (what is hashed) parses back to the same document. */
    char *canon = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(canon != NULL);
    json_t *back = json_loads(canon, JSON_DECODE_ANY, &jerr);
    FUZZ_CHECK(back != NULL && json_equal(back, doc));
    json_decref(back);
    free(canon);

    json_decref(doc);
    return 0;
}
