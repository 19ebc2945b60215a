/* SPDX-License-Identifier: BSD-3-Clause */
/* memcached's meta protocol, the part REMOCA speaks (docs/memcached.md has the
 * design: keys, the mapping of each REMOCA op, why the cache contract holds).
 *
 *   client                                      memcached (one connection)
 *   ──────                                      ─────────────────────────
 *   GET   mg K1 v q O1 ... mg Kn v q On  mn  ─▶  VA 4096 Oi\r\n<page>\r\n per hit, MN
 *   TAKE  mg K v c q Oi ... mn           ─▶  VA 4096 c<cas> Oi ..., MN
 *         then per hit: md K C<cas> q Oi ─▶  nothing, or EX (a newer put: kept) / NF
 *   PUT   ms K 4096 q Oi\r\n<page>\r\n    ─▶  nothing (errors only)
 *   DEL   md K q Oi                       ─▶  nothing, or NF Oi (absent)
 *   RESET a new epoch: nothing on the wire (every key of the old one is unreachable)
 *
 * Keys (remoca_mc_key): "R" + 16 hex digits of the pool id (a hash of the pool
 * name) + "." + 16 hex digits of the epoch + "." + the block number in hex,
 * at most REMOCA_MC_KEY_LEN bytes, printable, no spaces.
 *
 * Builders write one command line into a caller's buffer and return its
 * length, or 0 if it does not fit, a key is not a valid memcached key, or a
 * flag does not belong to the command; they never write past `cap`.
 *
 * The parser is a state machine fed arbitrary chunks of the server's byte
 * stream; it yields one event at a time.  Everything the server sends is
 * hostile: lines are bounded (REMOCA_MC_LINE_MAX), a value is exactly one page
 * (or, if the parser was told to accept them, a number of at most 20 digits),
 * data goes only into the destination the caller gave for that value, numbers
 * are checked for overflow.  An error is sticky: the stream is out of sync and
 * the connection must be closed.  No I/O, no allocation, no threads.
 */
#ifndef REMOCA_MC_H
#define REMOCA_MC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REMOCA_MC_VALUE_SIZE 4096u /* a page: the value size of a block */
#define REMOCA_MC_KEY_MAX 250u     /* memcached's limit on a key */
#define REMOCA_MC_KEY_LEN 51u      /* longest key remoca_mc_key writes */
#define REMOCA_MC_CMD_MAX 320u     /* longest command line a builder writes, CRLF included */
#define REMOCA_MC_LINE_MAX 512u    /* longest response line accepted, CRLF included */
#define REMOCA_MC_NUM_MAX 20u      /* digits of a u64: the longest number value (ma) */
#define REMOCA_MC_MSG_MAX 128u     /* bytes of an error line's message kept, NUL excluded */
/* A block of a sealed pool: its page || 32-byte sidecar (remoca/wire.h,
 * REMOCA_SEALED_UNIT); the largest value a builder or the parser accepts. */
#define REMOCA_MC_SEALED_VALUE_SIZE 4128u

/* ---- keys ---------------------------------------------------------------- */

/* A pool's namespace on one server: the pool id and the epoch.  A new epoch
 * is a pool reset (nothing stored under another epoch is ever addressed). */
struct remoca_mc_ns {
    uint64_t pool;  /* remoca_mc_pool_id(name) */
    uint64_t epoch; /* chosen at every reset (docs/memcached.md) */
};

/* 64-bit hash of a pool name (FNV-1a with a final avalanche); stable. */
uint64_t remoca_mc_pool_id(const char *name, size_t len);

/* Writes the key of block `block` in ns (not NUL-terminated); returns its
 * length (35..REMOCA_MC_KEY_LEN) or 0 if cap is too small. */
size_t remoca_mc_key(char *out, size_t cap, const struct remoca_mc_ns *ns, uint64_t block);

/* Decodes a key written by remoca_mc_key: 0, or -1 if it is not one. */
int remoca_mc_key_decode(const char *key, size_t len, struct remoca_mc_ns *ns, uint64_t *block);

/* Whether key is a valid memcached key: 1..250 bytes, each printable ASCII
 * other than space (no control bytes, no whitespace, nothing above 0x7e). */
bool remoca_mc_key_ok(const char *key, size_t len);

/* ---- command builders ---------------------------------------------------- */

/* Flags of a command (those a command does not take make its builder fail). */
#define REMOCA_MC_F_VALUE 0x01u  /* v: return the value (mg, ma) */
#define REMOCA_MC_F_RETCAS 0x02u /* c: return the item's CAS (mg) */
#define REMOCA_MC_F_QUIET 0x04u  /* q: no line for EN (mg) or HD (ms, md, ma) */
#define REMOCA_MC_F_OPAQUE 0x08u /* O<opaque>: echoed in the response (all) */
#define REMOCA_MC_F_CMPCAS 0x10u /* C<cas>: only if the item's CAS is cas (ms, md, ma) */
#define REMOCA_MC_F_VIVIFY 0x20u /* N0 J<initial>: create a missing counter (ma) */

struct remoca_mc_cmd {
    const char *key;
    size_t key_len;
    unsigned flags;   /* REMOCA_MC_F_* */
    uint32_t opaque;  /* REMOCA_MC_F_OPAQUE: decimal O token */
    uint64_t cas;     /* REMOCA_MC_F_CMPCAS */
    uint64_t initial; /* ma with REMOCA_MC_F_VIVIFY: the value of a new counter */
    uint64_t delta;   /* ma: D<delta>; 0 = the server's default, 1 */
};

/* mg <key> [v] [c] [q] [O<opaque>] */
size_t remoca_mc_mg(char *out, size_t cap, const struct remoca_mc_cmd *c);
/* ms <key> <value_len> [q] [O<opaque>] [C<cas>]: the line only; the caller sends
 * value_len (<= REMOCA_MC_SEALED_VALUE_SIZE) bytes and "\r\n" after it. */
size_t remoca_mc_ms(char *out, size_t cap, const struct remoca_mc_cmd *c, uint32_t value_len);
/* md <key> [q] [O<opaque>] [C<cas>] */
size_t remoca_mc_md(char *out, size_t cap, const struct remoca_mc_cmd *c);
/* ma <key> [v] [q] [O<opaque>] [C<cas>] [N0 J<initial>] [D<delta>] (increment) */
size_t remoca_mc_ma(char *out, size_t cap, const struct remoca_mc_cmd *c);
/* mn: its MN says every command before it has been answered. */
size_t remoca_mc_mn(char *out, size_t cap);

/* Longest mg line of a batch ("mg " key " v c q O4294967295\r\n"), and the
 * buffer a batch of count keys needs at most (its lines and the mn). */
#define REMOCA_MC_GET_LINE_MAX (3u + REMOCA_MC_KEY_LEN + 18u + 2u)
#define REMOCA_MC_BATCH_BYTES(count) ((count)*REMOCA_MC_GET_LINE_MAX + 4u)

/* A pipelined GET (take=false) or the first half of a TAKE (take=true: also
 * c, the CAS each hit's md must carry) of blocks [block, block+count) in ns:
 * count mg lines, quiet, with opaque opaque0 + i for block + i, then mn.
 * Returns the bytes written or 0 if they do not fit (count 1..256). */
size_t remoca_mc_get_batch(char *out, size_t cap, const struct remoca_mc_ns *ns, uint64_t block,
                           uint32_t count, bool take, uint32_t opaque0);

/* ---- response parser ----------------------------------------------------- */

enum remoca_mc_kind {
    REMOCA_MC_NONE = 0,     /* no event: every byte given was consumed */
    REMOCA_MC_HD,           /* success (stored, deleted, counted, or mg without v) */
    REMOCA_MC_VA,           /* a value follows: size bytes (then REMOCA_MC_VALUE) */
    REMOCA_MC_VALUE,        /* the value announced by the last VA has arrived */
    REMOCA_MC_EN,           /* miss (mg) */
    REMOCA_MC_NF,           /* not found (md, ma, ms with C) */
    REMOCA_MC_NS,           /* not stored */
    REMOCA_MC_EX,           /* CAS mismatch: the item changed */
    REMOCA_MC_MN,           /* every command before the mn has been answered */
    REMOCA_MC_ERROR,        /* "ERROR": unknown command */
    REMOCA_MC_CLIENT_ERROR, /* "CLIENT_ERROR msg": our command was malformed */
    REMOCA_MC_SERVER_ERROR, /* "SERVER_ERROR msg": e.g. out of memory */
};

/* Which return flags an event carried. */
#define REMOCA_MC_R_OPAQUE 0x01u /* O<opaque> */
#define REMOCA_MC_R_CAS 0x02u    /* c<cas> */
#define REMOCA_MC_R_WIN 0x04u    /* W */
#define REMOCA_MC_R_STALE 0x08u  /* X */
#define REMOCA_MC_R_WON 0x10u    /* Z */

struct remoca_mc_event {
    enum remoca_mc_kind kind;
    unsigned has;    /* REMOCA_MC_R_* */
    uint32_t opaque; /* REMOCA_MC_R_OPAQUE */
    uint64_t cas;    /* REMOCA_MC_R_CAS */
    uint32_t size;   /* VA, VALUE: data bytes (REMOCA_MC_VALUE_SIZE, or 1..20: a number) */
    bool stored;     /* VALUE: the data went to the caller's destination */
    uint64_t number; /* VALUE of a number (1..20 digits) */
    const char *msg; /* CLIENT_ERROR, SERVER_ERROR, ERROR: message, NUL-terminated,
                           valid until the next call (possibly "") */
};

enum remoca_mc_err {
    REMOCA_MC_OK = 0,
    REMOCA_MC_E_LINE,   /* a line longer than REMOCA_MC_LINE_MAX */
    REMOCA_MC_E_CRLF,   /* a line or a value not terminated by CRLF */
    REMOCA_MC_E_BYTE,   /* a control or non-ASCII byte in a line */
    REMOCA_MC_E_CODE,   /* an unknown response code, or tokens where none belong */
    REMOCA_MC_E_NUMBER, /* a malformed or overflowing number (size, opaque, cas, value) */
    REMOCA_MC_E_SIZE,   /* a value size we did not ask for, or larger than the destination */
    REMOCA_MC_E_FLAG,   /* a malformed return flag */
    REMOCA_MC_E_STATE,  /* the parser used out of turn (caller bug) */
};

#define REMOCA_MC_P_NUMBERS 0x01u /* accept number values (ma with v), 1..20 digits */
/* Sealed pools: accept values of any size 1..REMOCA_MC_SEALED_VALUE_SIZE
 * (the caller checks it: a wrong size is a miss, never data). */
#define REMOCA_MC_P_SEALED 0x02u

struct remoca_mc_parser {
    unsigned opts;          /* REMOCA_MC_P_* */
    int state;              /* internal */
    enum remoca_mc_err err; /* sticky once set */
    char why[96];           /* the error, in words */
    uint32_t line_len;
    char line[REMOCA_MC_LINE_MAX];
    char msg[REMOCA_MC_MSG_MAX + 1];
    uint32_t size, got; /* the value being received: announced, arrived */
    uint8_t *dest;      /* where it goes (NULL: discarded) */
    char num[REMOCA_MC_NUM_MAX];
    struct remoca_mc_event va; /* the VA the value belongs to (flags for VALUE) */
};

void remoca_mc_parser_init(struct remoca_mc_parser *p, unsigned opts);

/* Consumes bytes from in[0..len) up to and including the end of one event.
 * Returns 1 with *ev filled, 0 if all of in was consumed without completing
 * an event (ev->kind = REMOCA_MC_NONE), -1 on an error (remoca_mc_parser_error);
 * *used is the bytes consumed in every case.  Feed the rest again. */
int remoca_mc_parse(struct remoca_mc_parser *p, const void *in, size_t len, size_t *used,
                    struct remoca_mc_event *ev);

/* After a VA event (and before the next parse): where its data goes.  cap must
 * be at least the value's size, else the parser fails with REMOCA_MC_E_SIZE
 * and -1 is returned.  Without a destination the data is consumed and
 * dropped; a number value always goes to the parser's own buffer. */
int remoca_mc_parser_dest(struct remoca_mc_parser *p, void *dest, size_t cap);

/* The error in words (e.g. "value of 4097 bytes, expected 4096"), or "". */
const char *remoca_mc_parser_error(const struct remoca_mc_parser *p);

const char *remoca_mc_kind_name(enum remoca_mc_kind k);

#endif
