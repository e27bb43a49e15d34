/*
 * clock: the one monotonic clock. Request timings, Redis and upstream
 * durations, lease and wait deadlines and the oldest request's age are all
 * read from it, so they can be compared with each other. Wall-clock time
 * (log timestamps, a record's `created`) is not its business.
 */
#ifndef IDEM_CLOCK_H
#define IDEM_CLOCK_H

/* Milliseconds since an arbitrary fixed point (CLOCK_MONOTONIC), with
 * sub-millisecond precision. */
double now_ms(void);

#endif
