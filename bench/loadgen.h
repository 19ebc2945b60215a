/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-loadgen: shared declarations of the load generator's parts.
 *
 *   loadgen.c      options, worker threads, the epoll loop, the report
 *   lg_proto.c     the wire protocols it speaks (remoca, memcached meta, echo)
 *   lg_hist.c      the latency histogram
 *   lg_echo.c      the 4 KiB echo server (the loopback ping-pong's other end)
 *
 * The generator measures a server, not a client library: it links only the
 * wire codec (remoca_wire), builds every request itself and validates every
 * response itself.
 */
#ifndef REMOCA_BENCH_LOADGEN_H
#define REMOCA_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LG_VALUE_SIZE 4096u

enum lg_proto { LG_REMOCA, LG_MEMCACHED, LG_ECHO };
enum lg_op { LG_GET, LG_PUT, LG_ECHO_OP };

/* Outcome of one response. */
enum lg_result { LG_OK, LG_MISS, LG_ERROR };

/* One parsed response.  `slot` is the request slot it answers (protocols
 * whose responses come in order set it to -1: the oldest request). */
struct lg_completion {
    int slot;
    enum lg_result result;
    const uint8_t *value; /* the 4 KiB value of a get/echo hit, else NULL */
};

/* Return of a parser: bytes consumed (> 0), 0 = incomplete, -1 = the stream
 * cannot be understood any more (the connection is given up). */
struct lg_conn_proto {
    enum lg_proto proto;
    uint32_t pool; /* remoca: handle from POOL_OPEN */
};

/* Connects and does the blocking handshake (remoca: HELLO + POOL_OPEN).
 * Returns a blocking socket or -1 with a message on stderr. */
int lg_proto_connect(struct lg_conn_proto *cp, const char *host, int port, const char *unix_path,
                     const char *pool, const char *cred);

/* Largest request or response, for buffer sizing. */
#define LG_MAX_REQ (LG_VALUE_SIZE + 128u)

/* Appends the request for (op, key) in request slot `slot` to `out`, which
 * has at least LG_MAX_REQ bytes.  Returns the bytes written. */
size_t lg_proto_encode(const struct lg_conn_proto *cp, uint8_t *out, enum lg_op op, uint64_t key,
                       unsigned slot, uint32_t seq);

/* Parses one response from in[0..len).  Returns bytes consumed, 0 if more
 * bytes are needed, -1 on a desynchronised stream. */
ssize_t lg_proto_parse(const struct lg_conn_proto *cp, enum lg_op op, const uint8_t *in, size_t len,
                       struct lg_completion *c);

/* The value stored under a key: the key in its first 8 bytes, then a fixed
 * pattern.  A get checks the first 8 bytes (wrong data is an error). */
void lg_value_fill(uint8_t *v, uint64_t key);
bool lg_value_check(const uint8_t *v, uint64_t key);

/* Latency histogram: log-linear buckets over nanoseconds, ~1.5% precision.
 *
 *   value (ns) ->  [ exponent e = msb(v) ][ 6 bits below the msb ]
 *   bucket     =   e * 64 + those 6 bits   (values < 64 map to themselves)
 */
#define LG_HIST_SUB 64u
#define LG_HIST_BUCKETS (64u * LG_HIST_SUB)
struct lg_hist {
    uint64_t count[LG_HIST_BUCKETS];
    uint64_t n;
    double sum_ns;
};
void lg_hist_add(struct lg_hist *h, uint64_t ns);
void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from);
/* Value at quantile q (0..1), in nanoseconds (bucket midpoint). */
double lg_hist_quantile(const struct lg_hist *h, double q);

/* Echo server: answers every byte it receives with the same byte, one
 * thread per connection.  Never returns on success. */
int lg_echo_serve(const char *host, int port, const char *port_file);

/* Splits "HOST:PORT".  Returns 0 or -1. */
int lg_parse_hostport(const char *s, char *host, size_t hostcap, int *port);

#endif
