// One POST with an Idempotency-Key through a real retrying client from npm
// (axios with axios-retry), configured as an application that retries a
// payment or an order would configure it, for test/e2e/test_retrying_client.py.
//
//   node retry-post.js '{"url": ..., "key": ..., "body": {...},
//                        "timeoutMs": 1000, "retries": 3, "retry409": false}'
//
// Each attempt has its own timeout (shouldResetTimeout) and the same
// Idempotency-Key; the delay before a retry is axios-retry's exponential
// one, which waits at least what Retry-After says. Retried: timeouts,
// network errors, 5xx and 429 (axios-retry's isRetryableError), and with
// retry409 every 409 too, as some clients do. Prints one JSON line: the
// final status, Idempotent-Replayed, body, and why each retry was made.
'use strict';

const axios = require('axios');
const axiosRetry = require('axios-retry').default;

const opt = JSON.parse(process.argv[2]);
const retries = [];
const client = axios.create({ timeout: opt.timeoutMs });

axiosRetry(client, {
  retries: opt.retries,
  shouldResetTimeout: true,
  retryDelay: axiosRetry.exponentialDelay,
  retryCondition: (e) =>
    axiosRetry.isNetworkError(e) ||
    e.code === 'ECONNABORTED' ||
    axiosRetry.isRetryableError(e) ||
    (opt.retry409 && e.response !== undefined && e.response.status === 409),
  onRetry: (n, e) => {
    retries.push({
      n,
      why: e.response ? e.response.status : e.code,
      retryAfter: e.response ? e.response.headers['retry-after'] || null : null,
    });
  },
});

function report(res, error) {
  process.stdout.write(JSON.stringify({
    status: res ? res.status : null,
    replayed: res ? res.headers['idempotent-replayed'] || null : null,
    body: res ? res.data : null,
    error: error || null,
    retries,
  }) + '\n');
}

client.post(opt.url, opt.body, {
  headers: { 'Idempotency-Key': opt.key, 'Content-Type': 'application/json' },
  responseType: 'text',
  transformResponse: [(d) => d],
}).then((res) => report(res, null), (e) => report(e.response, e.code || String(e)));
