/*
 * retry: the Retry-After idemproxy gives a duplicate that arrives while the
 * first request with its key still runs (409 REQUEST_PROCESSING,
 * in_flight = reject). Owns the estimate of a route's upstream time and
 * the hint made from it. Does not own where the estimate is kept (one per
 * worker and route, in struct proxy) or when an answer carries the hint
 * (proxy/req.c).
 */
#ifndef IDEM_RETRY_H
#define IDEM_RETRY_H

#include <stdint.h>

/* A route's upstream time as an exponentially weighted moving average:
 * each answer moves it a fifth of the way to its own time. */
struct retry_estimate {
    double ms;                     /* the average; 0 until the first sample */
    unsigned seen:1;               /* at least one upstream answer seen */
};

/* Add one upstream answer's duration (milliseconds). */
void retry_observe(struct retry_estimate *e, double ms);

/*
 * Seconds to tell a duplicate to wait: the estimate less the time the
 * first request has already run (lease_ms - pttl_ms: its claim was taken
 * with the route's lease), rounded up; at least 1; never more than the
 * lease left (rounded up). Without an estimate, or without a lease left
 * (pttl_ms <= 0), 1.
 */
long retry_after_in_flight(const struct retry_estimate *e, int64_t lease_ms,
                           long long pttl_ms);

#endif
