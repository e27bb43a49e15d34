'use strict';
// The second Node peer for `make bench`: @node-idempotency/core with its
// Redis adapter (@node-idempotency/storage-adapter-redis), driven from a
// plain Node HTTP server the way the core package's README shows: call
// onRequest when a request arrives (a stored response comes back for a
// duplicate; an IdempotencyError for a missing key, a fingerprint mismatch
// or a request in progress), run the business logic (here: the same nginx
// upstream idemproxy is in front of) for a new one, then onResponse with
// what it answered, so it is stored.
//
// env: PORT, UPSTREAM_PORT, REDIS_URL
const http = require('http');
const postUpstream = require('./upstream');
const { Idempotency, IdempotencyError, IdempotencyErrorCodes } = require('@node-idempotency/core');
const { RedisStorageAdapter } = require('@node-idempotency/storage-adapter-redis');

const PORT = Number(process.env.PORT);
const UPSTREAM_PORT = Number(process.env.UPSTREAM_PORT);

const storage = new RedisStorageAdapter({ url: process.env.REDIS_URL });
const idempotency = new Idempotency(storage, { cacheTTLMS: 86400 * 1000, enforceIdempotency: true });

function callUpstream(path, payload) {
    return postUpstream(UPSTREAM_PORT, path, payload);
}

const statusOf = {
    [IdempotencyErrorCodes.IDEMPOTENCY_KEY_MISSING]: 400,
    [IdempotencyErrorCodes.IDEMPOTENCY_KEY_LEN_EXEEDED]: 400,
    [IdempotencyErrorCodes.IDEMPOTENCY_FINGERPRINT_MISSMATCH]: 422,
    [IdempotencyErrorCodes.REQUEST_IN_PROGRESS]: 409,
};

function send(res, status, body, replayed) {
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
    if (replayed !== undefined)
        headers['Idempotent-Replayed'] = replayed ? 'true' : 'false';
    res.writeHead(status, headers);
    res.end(body);
}

async function handle(req, res, raw) {
    if (req.method === 'GET' && req.url === '/healthz')
        return send(res, 200, 'ok');
    if (req.method !== 'POST' || req.url.split('?')[0] !== '/v1/orders')
        return send(res, 404, '{"error":"not found"}');
    let body;
    try {
        body = raw.length ? JSON.parse(raw) : {};
    } catch (e) {
        return send(res, 400, '{"error":"invalid json"}');
    }
    const ireq = { method: req.method, headers: req.headers, body, path: req.url };
    let stored;
    try {
        stored = await idempotency.onRequest(ireq);
    } catch (err) {
        if (err instanceof IdempotencyError)
            return send(res, statusOf[err.code] || 400, JSON.stringify({ error: err.code }));
        return send(res, 503, '{"error":"store"}');
    }
    if (stored)
        return send(res, stored.additional.status, stored.body, true);
    let r;
    try {
        r = await callUpstream(req.url, raw);
    } catch (err) {
        await idempotency.onResponse(ireq, { error: 'upstream', additional: { status: 502 } });
        return send(res, 502, '{"error":"upstream"}');
    }
    await idempotency.onResponse(ireq, { body: r.body, additional: { status: r.status } });
    send(res, r.status, r.body, false);
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        handle(req, res, Buffer.concat(chunks).toString('utf8')).catch(() => send(res, 500, '{}'));
    });
});
server.keepAliveTimeout = 300000;
server.headersTimeout = 301000;
storage.connect().then(() => server.listen(PORT, '127.0.0.1'),
    (err) => { console.error(err); process.exit(1); });
process.on('SIGTERM', () => process.exit(0));
