'use strict';
// The Node peer for `make bench`: an express app that does what idemproxy
// does in front of the same nginx upstream. POST /v1/orders parses the JSON
// body, calls the upstream (keep-alive agent) and answers with its status and
// body. With MODE=idem the route has express-idempotency in front of it,
// storing in Redis through express-idempotency-redis-adapter, used as the
// two packages' READMEs show: the middleware on the route, the handler
// returning early when isHit(req) says the middleware already answered.
// With MODE=bare it is the same app without the middleware.
//
// env: PORT, UPSTREAM_PORT, REDIS_URL, MODE (idem|bare)
const postUpstream = require('./upstream');
const express = require('express');
const idempotency = require('express-idempotency');
const RedisAdapter = require('express-idempotency-redis-adapter').default;

const PORT = Number(process.env.PORT);
const UPSTREAM_PORT = Number(process.env.UPSTREAM_PORT);
const MODE = process.env.MODE || 'idem';

function callUpstream(req) {
    return postUpstream(UPSTREAM_PORT, req.originalUrl, JSON.stringify(req.body));
}

const app = express();
app.use(express.json());

let service = null;
let adapter = null;
if (MODE === 'idem') {
    adapter = new RedisAdapter({
        connectionConfig: { url: process.env.REDIS_URL },
        ttl: 86400,
    });
    app.post('/v1/orders', idempotency.idempotency({ dataAdapter: adapter }));
    service = idempotency.getSharedIdempotencyService();
}

app.post('/v1/orders', async (req, res) => {
    if (service !== null && service.isHit(req))
        return; // the middleware answered (replay, 409 or 417)
    try {
        const r = await callUpstream(req);
        // a string (not a Buffer) so the stored copy replays as the same text
        res.status(r.status).type('application/json').send(r.body);
    } catch (err) {
        if (service !== null)
            await service.reportError(req);
        res.status(502).json({ error: 'upstream' });
    }
});

app.get('/healthz', (req, res) => res.send('ok'));

function listen() {
    const server = app.listen(PORT, '127.0.0.1');
    server.keepAliveTimeout = 300000;
    server.headersTimeout = 301000;
}
if (adapter !== null)
    adapter.connect().then(listen, (err) => { console.error(err); process.exit(1); });
else
    listen();
process.on('SIGTERM', () => process.exit(0));
