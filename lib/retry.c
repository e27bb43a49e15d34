/*
 * retry.c: the upstream-time estimate of a route and the Retry-After hint
 * made from it (retry.h).
 */
#include "retry.h"

#include <math.h>

#define RETRY_WEIGHT 0.2           /* of the newest sample */

void retry_observe(struct retry_estimate *e, double ms)
{
    if (!(ms >= 0))                /* NaN, negative: not a duration */
        return;
    e->ms = e->seen ? e->ms + RETRY_WEIGHT * (ms - e->ms) : ms;
    e->seen = 1;
}

long retry_after_in_flight(const struct retry_estimate *e, int64_t lease_ms,
                           long long pttl_ms)
{
    if (pttl_ms <= 0 || !e->seen)
        return 1;
    double ran = (double)(lease_ms - pttl_ms);
    if (ran < 0)
        ran = 0;                   /* a reload made the lease shorter */
    double s = ceil((e->ms - ran) / 1000.0);
    double cap = ceil((double)pttl_ms / 1000.0);
    if (s > cap)
        s = cap;
    return s < 1 ? 1 : (long)s;
}
