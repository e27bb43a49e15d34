'use strict';
// What both Node peers call for a first request: a POST to the nginx
// upstream on a keep-alive agent, resolved with its status and body text.
const http = require('http');

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

module.exports = function postUpstream(port, path, payload) {
    return new Promise((resolve, reject) => {
        const up = http.request({
            host: '127.0.0.1', port, method: 'POST', path, agent,
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        }, (r) => {
            const chunks = [];
            r.on('data', (c) => chunks.push(c));
            r.on('end', () => resolve({ status: r.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
            r.on('error', reject);
        });
        up.on('error', reject);
        up.end(payload);
    });
};
