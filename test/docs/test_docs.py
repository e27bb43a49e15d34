"""make docs-test: the documentation stays in step with the binary.

- every option of `idemproxy -T options` (the option table of lib/confopts.c)
  is in doc/idemproxy.conf.5 and in the README's configuration table (both
  written from it by scripts/gen-docs: `gen-docs --check` must find nothing
  to change; the README's rows are checked for their defaults too), and in
  conf/idemproxy.conf (set or commented, under its section); an option that
  README.md or doc/*.md names (`name = value`, `[section] name`) exists;
- every metric of `idemproxy -T metrics` (STATS_METRICS, lib/stats.h) and
  every outcome is in the README's metrics table (written by gen-docs), and
  every idemproxy_ metric that README.md or doc/*.md names exists;
- README.md and doc/*.md tell no story of how they were written ("this
  stop", "the stop before", dates of runs) and point at nothing outside
  the repository (../shared, SPEC.md); every relative link in them and in
  CHANGELOG.md resolves; the README stays under 450 lines; CHANGELOG.md has
  the binary's version and an Unreleased section;
- every error code idemproxy answers with is in the README;
- every flag of `idemproxy -h` is described in doc/idemproxy.8;
- every error code proxy/req.c and proxy/server.c answer with is in the
  `-T openapi` document of conf/idemproxy.conf;
- both man pages render with groff without a warning (and with `man -l`);
- the example in idemproxy.conf(5) passes `idemproxy -t`;
- `idemproxy -T openapi` on conf/idemproxy.conf and on the Kubernetes
  ConfigMap's config is OpenAPI 3.0 (checked against the rules of the 3.0
  schema that a generator can break) with the Idempotency-Key parameter,
  as the route says, on every protected route and method; on a bad config
  it says file:line and exits 1; an unknown -T is a usage error, exit 2.

Each check is a function that returns what is wrong; the *_can_fail tests
feed each one a broken input and expect it to say so.
"""
import configparser
import glob
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("IDEMPROXY_BIN", os.path.join(ROOT, "proxy", "idemproxy"))
MAN8 = os.path.join(ROOT, "doc", "idemproxy.8")
MAN5 = os.path.join(ROOT, "doc", "idemproxy.conf.5")
README = os.path.join(ROOT, "README.md")
CHANGELOG = os.path.join(ROOT, "CHANGELOG.md")
DOC_MD = sorted(glob.glob(os.path.join(ROOT, "doc", "*.md")))
EXAMPLE_CONF = os.path.join(ROOT, "conf", "idemproxy.conf")
ENV = dict(os.environ, REDIS_PASSWORD="x", ADMIN_TOKEN="t")


def run(*args, **kw):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=ENV,
                          timeout=30, **kw)


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def options():
    r = run("-T", "options")
    assert r.returncode == 0, r.stderr
    opts = json.loads(r.stdout)
    assert len(opts) > 30
    return opts


@pytest.fixture(scope="module")
def metrics():
    r = run("-T", "metrics")
    assert r.returncode == 0, r.stderr
    ms = json.loads(r.stdout)
    assert len(ms) >= 9
    return ms


def prose():
    """{relative path: text} of README.md and doc/*.md."""
    return {os.path.relpath(p, ROOT): read(p) for p in [README] + DOC_MD}


def render(path):
    """A man page as plain text, and groff's warnings."""
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou", path],
                       capture_output=True, text=True, timeout=60)
    return r.stdout, r.stderr, r.returncode


# ---- the checks: each returns a list of what is wrong ----

def unroff(s):
    """Enough of roff for finding names: escapes and font changes out."""
    s = re.sub(r"\\f[BIRP]", "", s)
    return s.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")


def missing_in_man5(opts, man5_source):
    """Options without an entry under their section's .SS heading."""
    entries, section = set(), None
    for line in man5_source.splitlines():
        m = re.match(r'\.SS "\[(\w+)', line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"\\fB(\S+)\\fR = ", line)
        if m and section:
            entries.add((section, unroff(m.group(1))))
    return ["[%s] %s" % (o["section"], o["name"]) for o in opts
            if (o["section"], o["name"]) not in entries]


def readme_rows(readme):
    """{(section, name): default cell} of the README's configuration table."""
    body = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[a-z_]+`", cells[1]):
            rows[(cells[0].split()[0], cells[1].strip("`"))] = cells[2]
    return rows


def wrong_in_readme(opts, readme):
    """Options without a row in the README table, or with another default."""
    rows, bad = readme_rows(readme), []
    for o in opts:
        key = (o["section"], o["name"])
        if key not in rows:
            bad.append("[%s] %s: no row" % key)
            continue
        cell, d = rows[key], o["default"]
        if d == "" and cell != "empty":
            bad.append("[%s] %s: the README says %s, the option table empty" % (key + (cell,)))
        elif d and cell != "`%s`" % d:
            bad.append("[%s] %s: the README says %s, the option table %s" % (key + (cell, d)))
    return bad


def conf_keys(text):
    """{(section kind, name)} set or commented out ("; name = ...") in an
    INI file, under the last uncommented section header."""
    keys, section = set(), None
    for line in text.splitlines():
        m = re.match(r"\s*\[\s*(\w+)", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"\s*[;#]?\s*([a-z_]+)\s*=", line)
        if m and section:
            keys.add((section, m.group(1)))
    return keys


def missing_in_conf(opts, text):
    keys = conf_keys(text)
    return ["[%s] %s" % (o["section"], o["name"]) for o in opts
            if (o["section"], o["name"]) not in keys]


def stale_options(opts, text):
    """Options text names that the option table does not have: `name =
    value` and `[section] name` in code spans."""
    names = {o["name"] for o in opts}
    pairs = {(o["section"], o["name"]) for o in opts}
    bad = []
    for span in re.findall(r"`([^`\n]+)`", text):
        m = re.match(r"\[(\w+)(?: NAME)?\] ([a-z_]+)$", span)
        if m and (m.group(1), m.group(2)) not in pairs:
            bad.append(span)
        m = re.match(r"([a-z_]+) = \S", span)
        if m and m.group(1) not in names:
            bad.append(span)
    return bad


def metric_problems(ms, readme, texts):
    """Metrics or outcomes the README leaves out; idemproxy_ names in texts
    that are no metric."""
    names = {m["name"] for m in ms}
    bad = ["%s: not in the README" % n for n in sorted(names) if "`%s`" % n not in readme]
    for m in ms:
        for label in m["labels"]:
            bad += ["%s=%s: not in the README" % (label["name"], v) for v in label["values"]
                    if "`%s`" % v not in readme]
    for path, text in sorted(texts.items()):
        for n in sorted(set(re.findall(r"\bidemproxy_[a-z_]+", text))):
            if re.sub(r"_(bucket|sum|count)$", "", n) not in names:
                bad.append("%s: %s is no metric" % (path, n))
    return bad


STORY = re.compile(r"(?i)\bthis stop\b|\bstop before\b|\bthe stop's\b|\bearlier stops\b|"
                   r"\bthis session\b|\.\./shared|\bSPEC\.md\b|\b20\d\d-\d\d-\d\d\b|"
                   r"\b\d{1,2} (?:January|February|March|April|May|June|July|August|"
                   r"September|October|November|December) 20\d\d\b")


def story_prose(text):
    """Lab-notebook phrases, dates and outside references in text."""
    return [m.group(0) for m in STORY.finditer(text)]


def broken_links(path, text):
    """Relative Markdown links of text (a file at path) that lead nowhere."""
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        f = os.path.normpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
        if not f.startswith(ROOT + os.sep) or not os.path.exists(f):
            bad.append(target)
    return bad


def help_flags(help_text):
    """The flags `-h` describes: "-c", "-t", "-T openapi", ..."""
    return [m.group(1).rstrip() for m in
            re.finditer(r"(?m)^\s+(-[A-Za-z](?: [a-z]+)?)\b", help_text)]


def missing_in_man8(flags, man8_text):
    """Flags with no item of their own in the rendered OPTIONS section."""
    opts = man8_text.split("\nOPTIONS\n", 1)[1].split("\nSIGNALS\n", 1)[0]
    items = {line.strip() for line in opts.splitlines()
             if re.match(r"^ {7}-", line)}
    return [f for f in flags if not any(i == f or i.startswith(f + " ") for i in items)]


OPERATION_KEYS = {"tags", "summary", "description", "externalDocs", "operationId",
                  "parameters", "requestBody", "responses", "callbacks", "deprecated",
                  "security", "servers"}
PATH_ITEM_KEYS = {"$ref", "summary", "description", "servers", "parameters",
                  "get", "put", "post", "delete", "options", "head", "patch", "trace"}
PARAMETER_KEYS = {"name", "in", "description", "required", "deprecated", "allowEmptyValue",
                  "style", "explode", "allowReserved", "schema", "content", "example",
                  "examples"}
HEADER_KEYS = PARAMETER_KEYS - {"name", "in"}
RESPONSE_KEYS = {"description", "headers", "content", "links"}
MEDIA_KEYS = {"schema", "example", "examples", "encoding"}
EXAMPLE_KEYS = {"summary", "description", "value", "externalValue"}
SCHEMA_KEYS = {"title", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
               "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
               "minItems", "uniqueItems", "maxProperties", "minProperties", "required",
               "enum", "type", "not", "allOf", "oneOf", "anyOf", "items", "properties",
               "additionalProperties", "description", "format", "default", "nullable",
               "discriminator", "readOnly", "writeOnly", "example", "externalDocs",
               "deprecated", "xml"}
COMPONENT_KINDS = {"schemas", "responses", "parameters", "examples", "requestBodies",
                   "headers", "securitySchemes", "links", "callbacks"}


def openapi_problems(doc):
    """What in doc breaks an OpenAPI 3.0 rule (the rules of the official 3.0
    JSON schema, plus path templates and references, for the objects
    `-T openapi` writes)."""
    bad = []

    def keys(where, obj, allowed, required=()):
        if not isinstance(obj, dict):
            bad.append("%s: not an object" % where)
            return False
        for k in obj:
            if k not in allowed and not k.startswith("x-"):
                bad.append("%s: %r is not allowed here" % (where, k))
        for k in required:
            if k not in obj:
                bad.append("%s: %r is required" % (where, k))
        return True

    def resolve(ref):
        node = doc
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def ref_ok(where, obj):
        if isinstance(obj, dict) and "$ref" in obj:
            if not obj["$ref"].startswith("#/") or resolve(obj["$ref"]) is None:
                bad.append("%s: $ref %s does not resolve" % (where, obj["$ref"]))
            return True
        return False

    def schema(where, s):
        if ref_ok(where, s) or not keys(where, s, SCHEMA_KEYS):
            return
        if "type" in s and s["type"] not in ("array", "boolean", "integer", "number",
                                             "object", "string"):
            bad.append("%s: type %r" % (where, s["type"]))
        if "required" in s and (not isinstance(s["required"], list) or not s["required"]):
            bad.append("%s: required must be a non-empty list" % where)
        if "enum" in s and (not isinstance(s["enum"], list) or not s["enum"]):
            bad.append("%s: enum must be a non-empty list" % where)
        if "pattern" in s:
            try:
                re.compile(s["pattern"])
            except re.error as e:
                bad.append("%s: pattern: %s" % (where, e))
        for name, sub in s.get("properties", {}).items():
            schema("%s.properties.%s" % (where, name), sub)

    def instance_problems(where, value, s):
        """value against schema s: type, required, enum, properties."""
        if ref_ok(where, s):
            s = resolve(s["$ref"]) or {}
        types = {"object": dict, "string": str, "array": list, "boolean": bool}
        t = s.get("type")
        if t == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
            bad.append("%s: %r is not an integer" % (where, value))
        elif t in types and not isinstance(value, types[t]):
            bad.append("%s: %r is not a %s" % (where, value, t))
        if "enum" in s and value not in s["enum"]:
            bad.append("%s: %r is not one of the enum" % (where, value))
        if isinstance(value, dict):
            for k in s.get("required", []):
                if k not in value:
                    bad.append("%s: %r missing" % (where, k))
            for k, sub in s.get("properties", {}).items():
                if k in value:
                    instance_problems("%s.%s" % (where, k), value[k], sub)

    def parameter(where, p):
        if ref_ok(where, p) or not keys(where, p, PARAMETER_KEYS, ("name", "in")):
            return
        if p.get("in") not in ("query", "header", "path", "cookie"):
            bad.append("%s: in %r" % (where, p.get("in")))
        if p.get("in") == "path" and p.get("required") is not True:
            bad.append("%s: a path parameter must be required: true" % where)
        if ("schema" in p) == ("content" in p):
            bad.append("%s: exactly one of schema and content" % where)
        if "schema" in p:
            schema(where + ".schema", p["schema"])

    def header(where, h):
        if ref_ok(where, h) or not keys(where, h, HEADER_KEYS):
            return
        if ("schema" in h) == ("content" in h):
            bad.append("%s: exactly one of schema and content" % where)
        if "schema" in h:
            schema(where + ".schema", h["schema"])

    def response(where, r):
        if ref_ok(where, r) or not keys(where, r, RESPONSE_KEYS, ("description",)):
            return
        for name, h in r.get("headers", {}).items():
            header("%s.headers.%s" % (where, name), h)
        for ct, media in r.get("content", {}).items():
            w = "%s.content.%s" % (where, ct)
            if not keys(w, media, MEDIA_KEYS):
                continue
            if "example" in media and "examples" in media:
                bad.append("%s: example and examples" % w)
            if "schema" in media:
                schema(w + ".schema", media["schema"])
            for name, ex in media.get("examples", {}).items():
                if keys("%s.examples.%s" % (w, name), ex, EXAMPLE_KEYS) and \
                        "value" in ex and "schema" in media:
                    instance_problems("%s.examples.%s" % (w, name), ex["value"],
                                      media["schema"])

    if not keys("document", doc, {"openapi", "info", "servers", "paths", "components",
                                  "security", "tags", "externalDocs"},
                ("openapi", "info", "paths")):
        return bad
    if not re.fullmatch(r"3\.0\.\d+(-.+)?", str(doc.get("openapi"))):
        bad.append("openapi %r is not 3.0.x" % doc.get("openapi"))
    keys("info", doc.get("info"), {"title", "description", "termsOfService", "contact",
                                   "license", "version"}, ("title", "version"))
    for kind, objs in doc.get("components", {}).items():
        if kind not in COMPONENT_KINDS and not kind.startswith("x-"):
            bad.append("components: %r" % kind)
            continue
        for name, obj in objs.items():
            w = "components.%s.%s" % (kind, name)
            if not re.fullmatch(r"[a-zA-Z0-9.\-_]+", name):
                bad.append("%s: bad component name" % w)
            {"schemas": schema, "headers": header, "responses": response,
             "parameters": parameter}.get(kind, lambda w, o: None)(w, obj)
    for path, item in doc.get("paths", {}).items():
        if path.startswith("x-"):
            continue
        if not path.startswith("/"):
            bad.append("path %r does not start with /" % path)
        if not keys(path, item, PATH_ITEM_KEYS):
            continue
        for i, p in enumerate(item.get("parameters", [])):
            parameter("%s.parameters[%d]" % (path, i), p)
        template = set(re.findall(r"\{([^}/]+)\}", path))
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "options", "head", "patch",
                              "trace"):
                continue
            w = "%s %s" % (method.upper(), path)
            if not keys(w, op, OPERATION_KEYS, ("responses",)):
                continue
            params = item.get("parameters", []) + op.get("parameters", [])
            seen = set()
            for i, p in enumerate(op.get("parameters", [])):
                parameter("%s.parameters[%d]" % (w, i), p)
            for p in params:
                k = (p.get("name"), p.get("in"))
                if k in seen and p in op.get("parameters", []):
                    bad.append("%s: parameter %s in %s twice" % (w, k[0], k[1]))
                seen.add(k)
            declared = {p.get("name") for p in params if p.get("in") == "path"}
            if declared != template:
                bad.append("%s: path parameters %s, template %s" % (w, sorted(declared),
                                                                  sorted(template)))
            rs = op.get("responses")
            if not isinstance(rs, dict) or not rs:
                bad.append("%s: responses must be a non-empty object" % w)
                continue
            for code, r in rs.items():
                if code != "default" and not code.startswith("x-") and \
                        not re.fullmatch(r"[1-5](\d\d|XX)", code):
                    bad.append("%s: response key %r" % (w, code))
                response("%s.responses.%s" % (w, code), r)
    return bad


def route_problems(doc, conf_text, opts):
    """Every route and method of the config as an operation with the
    Idempotency-Key parameter its settings call for."""
    defaults = {o["name"]: o["default"] for o in opts if o["section"] == "route"}
    ini = configparser.ConfigParser(inline_comment_prefixes=(";", "#"),
                                    comment_prefixes=(";", "#"), interpolation=None)
    ini.read_string(conf_text)
    bad, n = [], 0
    for section in ini.sections():
        if not section.startswith("route "):
            continue
        r = dict(ini[section])
        get = lambda k: r.get(k, defaults[k])
        path = get("path")
        tpl = path[:-2] + "/{subpath}" if path.endswith("/*") else path
        observe = get("mode") == "observe"
        for method in re.split(r"[,\s]+", get("methods").strip()):
            n += 1
            w = "%s %s (%s)" % (method, tpl, section)
            op = doc.get("paths", {}).get(tpl, {}).get(method.lower())
            if op is None:
                bad.append("%s: no operation" % w)
                continue
            keyp = [p for p in op.get("parameters", [])
                    if p.get("name") == "Idempotency-Key" and p.get("in") == "header"]
            if len(keyp) != 1:
                bad.append("%s: no Idempotency-Key header parameter" % w)
                continue
            want = get("require_key") in ("on", "true", "yes", "1") and not observe
            if keyp[0].get("required") is not want:
                bad.append("%s: Idempotency-Key required %r, want %r" %
                           (w, keyp[0].get("required"), want))
            if keyp[0].get("schema", {}).get("maxLength") != int(get("key_max_length")):
                bad.append("%s: maxLength is not key_max_length" % w)
            if op.get("x-idemproxy-mode") != ("observe" if observe else "enforce"):
                bad.append("%s: x-idemproxy-mode %r" % (w, op.get("x-idemproxy-mode")))
            if not observe:
                ct = ("application/problem+json" if get("error_format") == "problem"
                      else "application/json")
                mm = op["responses"].get(get("mismatch_status"), {})
                if "IDEMPOTENCY_KEY_MISMATCH" not in mm.get("content", {}).get(
                        ct, {}).get("examples", {}):
                    bad.append("%s: no %s IDEMPOTENCY_KEY_MISMATCH as %s" %
                               (w, get("mismatch_status"), ct))
                replayed = op["responses"].get("default", {}).get("headers", {})
                if "Idempotent-Replayed" not in replayed:
                    bad.append("%s: no Idempotent-Replayed header" % w)
    if n == 0:
        bad.append("the config has no route")
    return bad


def proxy_codes():
    """The codes proxy/ answers requests with: req_error / req_refuse /
    conn_error(..., status, "CODE", ...) in the request files, and the
    framing checks' table of statuses and codes in conn.c."""
    codes = set()
    for name in os.listdir(os.path.join(ROOT, "proxy")):
        if not name.endswith(".c") or name == "admin.c":
            continue
        text = read(os.path.join(ROOT, "proxy", name))
        codes |= set(re.findall(r'(?:req_error|req_refuse|conn_error)\([^"]*"([A-Z_]+)"', text))
        codes |= set(re.findall(r'\{ *\d{3}, *"([A-Z_]+)" *\}', text))
    return codes


def codes_not_documented(doc, codes):
    """Codes that no operation of doc lists as an example."""
    seen = set()
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for r in op.get("responses", {}).values():
                for media in r.get("content", {}).values():
                    seen |= set(media.get("examples", {}))
    return sorted(codes - seen)


def configmap_conf():
    """The idemproxy.conf of the Kubernetes example's ConfigMap, or None."""
    for path in sorted(glob.glob(os.path.join(ROOT, "conf", "kubernetes", "*.yaml"))):
        for obj in yaml.safe_load_all(read(path)):
            if obj and obj.get("kind") == "ConfigMap" and \
                    "idemproxy.conf" in (obj.get("data") or {}):
                return obj["data"]["idemproxy.conf"]
    return None


# ---- the tests ----

def test_gen_docs_is_current():
    r = subprocess.run([os.path.join(ROOT, "scripts", "gen-docs"), "--check", "--bin", BIN],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_every_option_in_man5(options):
    assert missing_in_man5(options, read(MAN5)) == []
    text, _, _ = render(MAN5)
    for o in options:
        assert "%s = " % o["name"] in text


def test_every_option_in_readme(options):
    assert wrong_in_readme(options, read(README)) == []


def test_docs_name_only_real_options(options):
    for path, text in prose().items():
        assert stale_options(options, text) == [], path


def test_every_metric_documented(metrics):
    assert metric_problems(metrics, read(README), prose()) == []


def test_docs_tell_no_story():
    for path, text in list(prose().items()) + [("CHANGELOG.md", read(CHANGELOG))]:
        if path != "CHANGELOG.md":
            assert story_prose(text) == [], path
        assert broken_links(os.path.join(ROOT, path), text) == [], path


def test_readme_is_short():
    n = read(README).count("\n")
    assert n < 450, "README.md has %d lines: depth belongs in doc/" % n


def test_changelog_has_this_version():
    text = read(CHANGELOG)
    version = run("-V").stdout.split()[-1]
    assert re.search(r"(?m)^## \[Unreleased\]", text)
    assert re.search(r"(?m)^## \[%s\]" % re.escape(version), text), version


def test_every_code_in_readme():
    readme = read(README)
    assert [c for c in sorted(proxy_codes()) if "`%s`" % c not in readme] == []


def test_every_option_in_example_conf(options):
    assert missing_in_conf(options, read(EXAMPLE_CONF)) == []


def test_every_help_flag_in_man8():
    r = run("-h")
    assert r.returncode == 0
    flags = help_flags(r.stdout)
    assert {"-c", "-t", "-T openapi", "-V", "-h"} <= set(flags), flags
    text, _, _ = render(MAN8)
    assert missing_in_man8(flags, text) == []


@pytest.mark.parametrize("page", [MAN8, MAN5])
def test_man_page_renders(page):
    assert shutil.which("groff"), "groff is missing: scripts/deps.sh installs groff-base"
    text, warnings, rc = render(page)
    assert rc == 0 and warnings == "", warnings
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"):
        assert "\n%s\n" % heading in text
    assert "\\f" not in text and "\\-" not in text, "raw roff in the output"
    if shutil.which("man"):
        r = subprocess.run(["man", "-l", "--warnings", page], capture_output=True, text=True,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"),
                           timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr


def test_man5_example_is_a_valid_config(tmp_path):
    src = read(MAN5).split("\n.SH EXAMPLE\n", 1)[1]
    example = unroff(src.split(".nf\n", 1)[1].split("\n.fi", 1)[0])
    conf = tmp_path / "example.conf"
    conf.write_text(example + "\n")
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr


CONFIGS = [("conf/idemproxy.conf", lambda: read(EXAMPLE_CONF)),
           ("conf/kubernetes ConfigMap", configmap_conf)]


@pytest.mark.parametrize("name,text", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_openapi(name, text, options, tmp_path):
    conf_text = text()
    if conf_text is None:
        pytest.skip("%s is not there" % name)
    conf = tmp_path / "idemproxy.conf"
    conf.write_text(conf_text)
    r = run("-T", "openapi", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert re.fullmatch(r"3\.0\.\d+", doc["openapi"])
    assert openapi_problems(doc) == []
    assert route_problems(doc, conf_text, options) == []
    assert "x-idemproxy-unreachable" not in doc


def test_openapi_lists_every_code_the_proxy_sends():
    codes = proxy_codes()
    assert {"BAD_REQUEST", "IDEMPOTENCY_KEY_REQUIRED", "STORE_UNAVAILABLE"} <= codes, codes
    doc = json.loads(run("-T", "openapi", "-c", EXAMPLE_CONF).stdout)
    assert codes_not_documented(doc, codes) == []
    enum = doc["components"]["schemas"]["IdempotencyError"]["properties"]["error"][
        "properties"]["code"]["enum"]
    assert sorted(codes - set(enum)) == []
    assert codes_not_documented(doc, codes | {"NEW_CODE"}) == ["NEW_CODE"]


def test_openapi_errors(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[route x]\npath = /x\nttl = 5\n")
    r = run("-T", "openapi", "-c", str(bad))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("%s:3: [route x] ttl:" % bad), r.stderr
    r = run("-T", "swagger", "-c", EXAMPLE_CONF)
    assert r.returncode == 2 and "usage:" in r.stderr and r.stdout == ""


# ---- negative controls: each check finds a planted fault ----

def test_option_checks_can_fail(options):
    readme, conf, man5 = read(README), read(EXAMPLE_CONF), read(MAN5)
    assert wrong_in_readme(options, readme.replace("| proxy | `workers` |", "| proxy | `wrk` |")) \
        == ["[proxy] workers: no row"]
    assert wrong_in_readme(options, readme.replace("| route NAME | `ttl` | `24h` |",
                                                   "| route NAME | `ttl` | `12h` |")) \
        == ["[route] ttl: the README says `12h`, the option table 24h"]
    assert missing_in_conf(options, re.sub(r"(?m)^; token = .*\n", "", conf)) \
        == ["[admin] token"]
    # [admin]'s listen does not count for [proxy]'s
    assert missing_in_conf(options, re.sub(r"(?m)^listen = 127.0.0.1:8080.*\n", "", conf)) \
        == ["[proxy] listen"]
    assert missing_in_man5(options, man5.replace("\\fBmode\\fR = ", "\\fBmood\\fR = ")) \
        == ["[route] mode"]
    extra = options + [dict(options[0], name="brand_new")]
    assert missing_in_man5(extra, man5) == ["[proxy] brand_new"]


def test_prose_checks_can_fail(options, metrics):
    readme = read(README)
    assert stale_options(options, "set `lease_time = 5s` and `[route NAME] lease`, "
                                  "`[proxy] leas`") == ["lease_time = 5s", "[proxy] leas"]
    assert metric_problems(metrics, readme.replace("`idemproxy_redis_errors_total`", "x"),
                           {}) == ["idemproxy_redis_errors_total: not in the README"]
    assert metric_problems(metrics, readme.replace("`not_stored`", "x"), {}) == \
        ["outcome=not_stored: not in the README", "would=not_stored: not in the README"]
    assert metric_problems(metrics, readme, {"doc/x.md": "idemproxy_requests_total and "
                                             "idemproxy_upstream_duration_seconds_bucket, "
                                             "idemproxy_claims_total"}) == \
        ["doc/x.md: idemproxy_claims_total is no metric"]
    assert story_prose("In this stop (23 November 2026) we ran it; see ../shared/SPEC.md, "
                       "as on 2026-11-23 and in the stop before.") == \
        ["this stop", "23 November 2026", "../shared", "SPEC.md", "2026-11-23", "stop before"]
    assert story_prose(read(README)) == []
    assert broken_links(README, "[a](doc/design.md) [b](doc/nothing.md) [c](#x) "
                                "[d](https://example.com) [e](../shared/SPEC.md)") == \
        ["doc/nothing.md", "../shared/SPEC.md"]


def test_gen_docs_can_fail(tmp_path):
    """An option without a description stops the generator."""
    fake = tmp_path / "idemproxy"
    opts = json.loads(run("-T", "options").stdout)
    opts.append(dict(opts[0], name="brand_new"))
    fake.write_text("#!/bin/sh\n[ \"$1\" = -V ] && { echo 'idemproxy 0.0'; exit 0; }\n"
                    "cat <<'EOF'\n%s\nEOF\n" % json.dumps(opts))
    fake.chmod(0o755)
    r = subprocess.run([os.path.join(ROOT, "scripts", "gen-docs"), "--check", "--bin",
                        str(fake)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no description for proxy.brand_new" in r.stderr


def test_man8_check_can_fail():
    text, _, _ = render(MAN8)
    assert missing_in_man8(["-c", "-Z", "-T openapi"], text) == ["-Z"]
    assert missing_in_man8(["-T json"], text) == ["-T json"]


def test_render_check_can_fail(tmp_path):
    page = tmp_path / "broken.8"
    page.write_text(read(MAN8).replace(".SH OPTIONS", ".SH OPTIONS\n\\fBbold\n.foo bar"))
    _, warnings, _ = render(str(page))
    assert warnings != ""


def test_openapi_checks_can_fail(options):
    conf_text = read(EXAMPLE_CONF)
    good = json.loads(run("-T", "openapi", "-c", EXAMPLE_CONF).stdout)
    assert openapi_problems(good) == [] and route_problems(good, conf_text, options) == []

    def broken(edit):
        doc = json.loads(json.dumps(good))
        edit(doc)
        return doc

    op = lambda d: d["paths"]["/v1/orders"]["post"]
    cases = [
        lambda d: d.update(openapi="3.1.0"),
        lambda d: op(d).pop("responses"),
        lambda d: op(d)["responses"].update({"4xx": {"description": "x"}}),
        lambda d: op(d)["responses"]["400"].pop("description"),
        lambda d: op(d).update(summary=None, nonsense=1),
        lambda d: d["paths"].update({"/x/{id}": {"post": {"responses": {"200": {
            "description": "x"}}}}}),
        lambda d: op(d)["parameters"][0].update({"in": "body"}),
        lambda d: op(d)["parameters"][0].pop("schema"),
        lambda d: op(d)["responses"]["409"]["headers"].update(
            {"Retry-After": {"$ref": "#/components/headers/Nope"}}),
        lambda d: d["components"]["schemas"]["IdempotencyError"].update(type="map"),
        lambda d: op(d)["responses"]["400"]["content"]["application/json"]["examples"][
            "BAD_REQUEST"]["value"]["error"].pop("code"),
        lambda d: op(d)["responses"]["400"]["content"]["application/json"]["examples"][
            "BAD_REQUEST"]["value"]["error"].update(code="NOT_A_CODE"),
    ]
    for i, edit in enumerate(cases):
        assert openapi_problems(broken(edit)) != [], "case %d passed" % i
    route_cases = [
        lambda d: op(d)["parameters"].pop(0),
        lambda d: op(d)["parameters"][0].update(required=False),
        lambda d: op(d)["parameters"][0]["schema"].update(maxLength=64),
        lambda d: d["paths"].pop("/jobs"),
        lambda d: op(d)["responses"]["409"]["content"]["application/json"]["examples"].pop(
            "IDEMPOTENCY_KEY_MISMATCH"),
        lambda d: op(d)["responses"]["default"].pop("headers"),
    ]
    for i, edit in enumerate(route_cases):
        assert route_problems(broken(edit), conf_text, options) != [], "route case %d" % i
