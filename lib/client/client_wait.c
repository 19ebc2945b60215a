/* SPDX-License-Identifier: BSD-3-Clause */
/* Waiting for responses: a 4-byte futex completion per call, and the
 * timeout policy.
 *
 *   caller                                     connection thread(s)
 *   completion_add() per registered waiter
 *   rc_completion_wait(deadline):
 *     word has pending > 0: set SLEEPING,
 *     futex_wait(word) ◀──────────────────── rc_completion_done(): word -= 1;
 *                                            last one and SLEEPING: futex_wake
 *
 * The release/acquire pair on `word` publishes everything the connection
 * thread wrote for the waiter (result, hit bits, pages) to the caller.  A
 * wake that arrives after the caller has returned hits a stale address, which
 * a futex wake tolerates (no memory is touched; spurious wakeups are retried
 * by every futex user).  No allocation, no syscall when the response came
 * before the caller slept.
 *
 * Timeout policy (rc_waiters_wait): at the deadline, the connection of every
 * late waiter is quarantined, which fails all of that connection's waiters
 * at once (see client_conn.c); a waiter whose response is being read right
 * then completes when the receiver gives up (SO_RCVTIMEO), or at worst when
 * the socket is shut down one more timeout later.  A call never
 * returns while a connection thread may still write into its buffers.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client_internal.h"

#define SLEEPING 0x80000000u
#define PENDING 0x7fffffffu

void rc_completion_done(struct completion *cp)
{
    uint32_t old = atomic_fetch_sub_explicit(&cp->word, 1, memory_order_acq_rel);
    if ((old & PENDING) == 1 && (old & SLEEPING))
        syscall(SYS_futex, &cp->word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int rc_completion_wait(struct completion *cp, const struct timespec *deadline)
{
    for (;;) {
        uint32_t v = atomic_load_explicit(&cp->word, memory_order_acquire);
        if ((v & PENDING) == 0) return 0;
        if (!(v & SLEEPING)) {
            if (!atomic_compare_exchange_weak_explicit(&cp->word, &v, v | SLEEPING,
                                                       memory_order_acq_rel, memory_order_acquire))
                continue;
            v |= SLEEPING;
        }
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
        long r = syscall(SYS_futex, &cp->word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, v, deadline,
                         NULL, FUTEX_BITSET_MATCH_ANY);
        if (r < 0 && errno == ETIMEDOUT) {
            v = atomic_load_explicit(&cp->word, memory_order_acquire);
            return (v & PENDING) == 0 ? 0 : -1;
        }
    }
}

void rc_waiters_wait(struct remoca_client *c, struct completion *cp, struct waiter *w, unsigned n,
                     const struct timespec *deadline)
{
    /* Someone must read each connection we wait on.  On one connection (the
     * common case: placement keeps a read on one server), read it ourselves
     * if nobody is: the server's answer then wakes this thread directly. */
    struct conn *only = NULL;
    uint64_t gen = 0;
    bool single = true;
    for (unsigned i = 0; i < n; i++) {
        if (!w[i].registered) continue;
        if (!only) {
            only = w[i].conn;
            gen = w[i].gen;
        } else if (w[i].conn != only) {
            single = false;
        }
    }
    if (only && single && completion_pending(cp)) {
        rc_conn_read_until(only, gen, cp, deadline);
    } else if (only) {
        for (unsigned i = 0; i < n; i++)
            if (w[i].registered) rc_conn_need_reader(w[i].conn);
    }

    if (rc_completion_wait(cp, deadline) < 0) {
        for (unsigned i = 0; i < n; i++) {
            if (w[i].registered && !atomic_load_explicit(&w[i].done, memory_order_acquire)) {
                w[i].late = true;
                rc_conn_quarantine(w[i].conn, w[i].gen, "request timed out");
            }
        }
        /* Waiters claimed by a receiver (response half read) finish when it
         * gives up on them; if not within another timeout, force it. */
        struct timespec again;
        rc_deadline_in(&again, c->timeout_ms);
        if (rc_completion_wait(cp, &again) < 0) {
            for (unsigned i = 0; i < n; i++)
                if (w[i].registered && !atomic_load_explicit(&w[i].done, memory_order_acquire))
                    rc_conn_kill(w[i].conn, w[i].gen, "response stuck half way");
            rc_completion_wait(cp, NULL);
        }
    }
    /* A sent request that failed once the deadline had passed timed out
     * (whether we read for ourselves or slept). */
    bool expired = rc_deadline_left_ms(deadline) == 0;
    for (unsigned i = 0; i < n; i++) {
        if (w[i].result != 0) {
            atomic_fetch_add_explicit(&c->failures, 1, memory_order_relaxed);
            if (w[i].late || (w[i].registered && expired && w[i].status == 0))
                atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed);
        }
    }
}
