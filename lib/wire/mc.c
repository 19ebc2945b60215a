/* SPDX-License-Identifier: BSD-3-Clause */
/* memcached meta protocol codec (see lib/wire/include/remoca/mc.h and
 * docs/memcached.md): key encoding, command builders, response parser.
 * Written from memcached's doc/protocol.txt (1.6); pure functions over bytes.
 *
 * The parser's states, one response at a time:
 *
 *            ┌──────────── line ends "\r\n" ───────────┐
 *            ▼                                         │
 *        ┌──────┐  "VA <size> <flags>*"   ┌──────┐ size bytes ┌────┐ '\r' ┌────┐ '\n'
 *   ───▶ │ LINE │ ──────────────────────▶ │ DATA │ ─────────▶ │ CR │ ───▶ │ LF │ ──▶ VALUE
 *        └──────┘  event VA: the caller   └──────┘ to dest     └────┘      └────┘   (back
 *            │     names the destination            (or dropped)                   to LINE)
 *            └─ "HD|EN|NF|NS|EX <flags>*", "MN", "ERROR", "CLIENT_ERROR m", "SERVER_ERROR m":
 *               one event each
 *
 * Anything else, at any point, is an error, and it is sticky: after a bad
 * byte nothing that follows can be trusted to be where the parser thinks.
 */
#include "remoca/mc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- keys ---------------------------------------------------------------- */

uint64_t remoca_mc_pool_id(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64-bit */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)name[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33; /* avalanche: every input bit reaches every output bit */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static const char HEX[] = "0123456789abcdef";

static void hex16(char *out, uint64_t v)
{
    for (int i = 15; i >= 0; i--, v >>= 4) out[i] = HEX[v & 15];
}

size_t remoca_mc_key(char *out, size_t cap, const struct remoca_mc_ns *ns, uint64_t block)
{
    char digits[16];
    int nd = 0;
    do {
        digits[nd++] = HEX[block & 15];
        block >>= 4;
    } while (block);
    size_t len = 1 + 16 + 1 + 16 + 1 + (size_t)nd;
    if (cap < len) return 0;
    out[0] = 'R';
    hex16(out + 1, ns->pool);
    out[17] = '.';
    hex16(out + 18, ns->epoch);
    out[34] = '.';
    for (int i = 0; i < nd; i++) out[35 + i] = digits[nd - 1 - i];
    return len;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1; /* upper case is not ours: keys have one spelling */
}

static int unhex(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval(s[i]);
        if (d < 0) return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int remoca_mc_key_decode(const char *key, size_t len, struct remoca_mc_ns *ns, uint64_t *block)
{
    if (len < 36 || len > REMOCA_MC_KEY_LEN) return -1;
    if (key[0] != 'R' || key[17] != '.' || key[34] != '.') return -1;
    if (len > 36 && key[35] == '0') return -1; /* no leading zeros */
    if (unhex(key + 1, 16, &ns->pool) || unhex(key + 18, 16, &ns->epoch)) return -1;
    return unhex(key + 35, len - 35, block);
}

bool remoca_mc_key_ok(const char *key, size_t len)
{
    if (len < 1 || len > REMOCA_MC_KEY_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f) return false;
    return true;
}

/* ---- command builders ---------------------------------------------------- */

/* A bounded writer: once something does not fit, it writes nothing more. */
struct out {
    char *p;
    size_t cap, n;
    bool over;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (o->over || len > o->cap - o->n) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->n, s, len);
    o->n += len;
}

static void put_u64(struct out *o, uint64_t v)
{
    char d[20];
    int n = 0;
    do {
        d[sizeof d - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, d + sizeof d - n, (size_t)n);
}

static void put_flag(struct out *o, const char *flag) { put(o, flag, strlen(flag)); }

static void put_flag_u64(struct out *o, const char *flag, uint64_t v)
{
    put_flag(o, flag);
    put_u64(o, v);
}

/* "<cmd> <key>[ <value_len>]" and the flags in a fixed order, "\r\n". */
static size_t build(char *out, size_t cap, const char *cmd, const struct remoca_mc_cmd *c,
                    unsigned allowed, const uint32_t *value_len)
{
    if ((c->flags & ~allowed) || !remoca_mc_key_ok(c->key, c->key_len)) return 0;
    if (value_len && *value_len > REMOCA_MC_SEALED_VALUE_SIZE) return 0;
    struct out o = {out, cap, 0, false};
    put_flag(&o, cmd);
    put(&o, " ", 1);
    put(&o, c->key, c->key_len);
    if (value_len) put_flag_u64(&o, " ", *value_len);
    if (c->flags & REMOCA_MC_F_VALUE) put_flag(&o, " v");
    if (c->flags & REMOCA_MC_F_RETCAS) put_flag(&o, " c");
    if (c->flags & REMOCA_MC_F_QUIET) put_flag(&o, " q");
    if (c->flags & REMOCA_MC_F_OPAQUE) put_flag_u64(&o, " O", c->opaque);
    if (c->flags & REMOCA_MC_F_CMPCAS) put_flag_u64(&o, " C", c->cas);
    if (c->flags & REMOCA_MC_F_VIVIFY) put_flag_u64(&o, " N0 J", c->initial);
    if (!strcmp(cmd, "ma") && c->delta) put_flag_u64(&o, " D", c->delta);
    put(&o, "\r\n", 2);
    return o.over ? 0 : o.n;
}

size_t remoca_mc_mg(char *out, size_t cap, const struct remoca_mc_cmd *c)
{
    return build(out, cap, "mg", c,
                 REMOCA_MC_F_VALUE | REMOCA_MC_F_RETCAS | REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE,
                 NULL);
}

size_t remoca_mc_ms(char *out, size_t cap, const struct remoca_mc_cmd *c, uint32_t value_len)
{
    return build(out, cap, "ms", c, REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS,
                 &value_len);
}

size_t remoca_mc_md(char *out, size_t cap, const struct remoca_mc_cmd *c)
{
    return build(out, cap, "md", c, REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS,
                 NULL);
}

size_t remoca_mc_ma(char *out, size_t cap, const struct remoca_mc_cmd *c)
{
    return build(out, cap, "ma", c,
                 REMOCA_MC_F_VALUE | REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE | REMOCA_MC_F_CMPCAS |
                     REMOCA_MC_F_VIVIFY,
                 NULL);
}

size_t remoca_mc_mn(char *out, size_t cap)
{
    if (cap < 4) return 0;
    memcpy(out, "mn\r\n", 4);
    return 4;
}

size_t remoca_mc_get_batch(char *out, size_t cap, const struct remoca_mc_ns *ns, uint64_t block,
                           uint32_t count, bool take, uint32_t opaque0)
{
    if (count < 1 || count > 256 || block > UINT64_MAX - (count - 1)) return 0;
    char key[REMOCA_MC_KEY_LEN];
    struct remoca_mc_cmd c = {.key = key,
                              .flags = REMOCA_MC_F_VALUE | REMOCA_MC_F_QUIET | REMOCA_MC_F_OPAQUE |
                                       (take ? REMOCA_MC_F_RETCAS : 0)};
    size_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        c.key_len = remoca_mc_key(key, sizeof key, ns, block + i);
        c.opaque = opaque0 + i;
        size_t m = remoca_mc_mg(out + n, cap - n, &c);
        if (!m) return 0;
        n += m;
    }
    size_t m = remoca_mc_mn(out + n, cap - n);
    return m ? n + m : 0;
}

/* ---- response parser ----------------------------------------------------- */

enum { ST_LINE, ST_DATA, ST_CR, ST_LF };

void remoca_mc_parser_init(struct remoca_mc_parser *p, unsigned opts)
{
    memset(p, 0, sizeof *p);
    p->opts = opts;
    p->state = ST_LINE;
}

static int fail(struct remoca_mc_parser *p, enum remoca_mc_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct remoca_mc_parser *p, enum remoca_mc_err err, const char *fmt, ...)
{
    if (p->err) return -1; /* the first error is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    p->err = err;
    return -1;
}

/* A decimal number of 1..20 digits, at most max. */
static int parse_num(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n < 1 || n > REMOCA_MC_NUM_MAX) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Next space-separated token of line[*pos..len): its start and length (0 at the end). */
static size_t token(const char *line, size_t len, size_t *pos, const char **tok)
{
    while (*pos < len && line[*pos] == ' ') (*pos)++;
    size_t start = *pos;
    while (*pos < len && line[*pos] != ' ') (*pos)++;
    *tok = line + start;
    return *pos - start;
}

static bool is_letter(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }

/* Return flags: the ones REMOCA asks for are checked, other letters ignored. */
static int parse_flags(struct remoca_mc_parser *p, const char *line, size_t len, size_t pos,
                       struct remoca_mc_event *ev)
{
    const char *t;
    size_t n;
    while ((n = token(line, len, &pos, &t)) > 0) {
        uint64_t v;
        if (!is_letter(t[0])) return fail(p, REMOCA_MC_E_FLAG, "bad return flag '%.*s'", 16, t);
        switch (t[0]) {
        case 'O':
            if (parse_num(t + 1, n - 1, UINT32_MAX, &v))
                return fail(p, REMOCA_MC_E_NUMBER, "bad opaque '%.*s'", 24, t);
            ev->opaque = (uint32_t)v;
            ev->has |= REMOCA_MC_R_OPAQUE;
            break;
        case 'c':
            if (parse_num(t + 1, n - 1, UINT64_MAX, &v))
                return fail(p, REMOCA_MC_E_NUMBER, "bad cas '%.*s'", 24, t);
            ev->cas = v;
            ev->has |= REMOCA_MC_R_CAS;
            break;
        case 'W':
        case 'X':
        case 'Z':
            if (n != 1) return fail(p, REMOCA_MC_E_FLAG, "bad return flag '%.*s'", 16, t);
            ev->has |= t[0] == 'W'   ? REMOCA_MC_R_WIN
                       : t[0] == 'X' ? REMOCA_MC_R_STALE
                                     : REMOCA_MC_R_WON;
            break;
        default: break; /* k, s, f, t, b...: never asked for, harmless */
        }
    }
    return 0;
}

/* "VA <size> <flags>*": the value's size decides where its bytes may go. */
static int parse_va(struct remoca_mc_parser *p, const char *line, size_t len, size_t pos,
                    struct remoca_mc_event *ev)
{
    const char *t;
    size_t n = token(line, len, &pos, &t);
    uint64_t size;
    if (parse_num(t, n, UINT32_MAX, &size))
        return fail(p, REMOCA_MC_E_NUMBER, "bad value size '%.*s'", 24, t);
    bool number = (p->opts & REMOCA_MC_P_NUMBERS) && size >= 1 && size <= REMOCA_MC_NUM_MAX;
    bool sealed = (p->opts & REMOCA_MC_P_SEALED) && size >= 1 &&
                  size <= REMOCA_MC_SEALED_VALUE_SIZE && !number;
    if (size != REMOCA_MC_VALUE_SIZE && !number && !sealed)
        return fail(p, REMOCA_MC_E_SIZE, "value of %llu bytes, expected %u",
                    (unsigned long long)size, REMOCA_MC_VALUE_SIZE);
    if (parse_flags(p, line, len, pos, ev)) return -1;
    ev->size = (uint32_t)size;
    p->size = (uint32_t)size;
    p->got = 0;
    p->dest = number ? (uint8_t *)p->num : NULL;
    p->va = *ev;
    p->state = ST_DATA;
    return 1;
}

/* The rest of an error line after its code: the message, cut to REMOCA_MC_MSG_MAX. */
static void take_msg(struct remoca_mc_parser *p, const char *line, size_t len, size_t pos,
                     struct remoca_mc_event *ev)
{
    while (pos < len && line[pos] == ' ') pos++;
    size_t n = len - pos > REMOCA_MC_MSG_MAX ? REMOCA_MC_MSG_MAX : len - pos;
    memcpy(p->msg, line + pos, n);
    p->msg[n] = '\0';
    ev->msg = p->msg;
}

static const struct {
    const char *code;
    enum remoca_mc_kind kind;
} CODES[] = {
    {"HD", REMOCA_MC_HD},
    {"VA", REMOCA_MC_VA},
    {"EN", REMOCA_MC_EN},
    {"NF", REMOCA_MC_NF},
    {"NS", REMOCA_MC_NS},
    {"EX", REMOCA_MC_EX},
    {"MN", REMOCA_MC_MN},
    {"ERROR", REMOCA_MC_ERROR},
    {"CLIENT_ERROR", REMOCA_MC_CLIENT_ERROR},
    {"SERVER_ERROR", REMOCA_MC_SERVER_ERROR},
};

/* A complete line in p->line (CRLF included): one event. */
static int parse_line(struct remoca_mc_parser *p, struct remoca_mc_event *ev)
{
    size_t len = p->line_len;
    const char *line = p->line;
    p->line_len = 0;
    if (len < 2 || line[len - 2] != '\r')
        return fail(p, REMOCA_MC_E_CRLF, "response line not terminated by CRLF");
    len -= 2;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return fail(p, REMOCA_MC_E_BYTE, "byte 0x%02x in a response line",
                        (unsigned char)line[i]);

    size_t pos = 0;
    const char *t;
    size_t n = token(line, len, &pos, &t);
    for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++) {
        if (n != strlen(CODES[i].code) || memcmp(t, CODES[i].code, n) != 0) continue;
        ev->kind = CODES[i].kind;
        switch (ev->kind) {
        case REMOCA_MC_VA: return parse_va(p, line, len, pos, ev);
        case REMOCA_MC_MN:
            if (token(line, len, &pos, &t))
                return fail(p, REMOCA_MC_E_CODE, "MN followed by '%.*s'", 16, t);
            return 1;
        case REMOCA_MC_ERROR:
        case REMOCA_MC_CLIENT_ERROR:
        case REMOCA_MC_SERVER_ERROR: take_msg(p, line, len, pos, ev); return 1;
        default: return parse_flags(p, line, len, pos, ev) ? -1 : 1;
        }
    }
    ev->kind = REMOCA_MC_NONE;
    return fail(p, REMOCA_MC_E_CODE, "unexpected response '%.*s'", 24, t);
}

/* Bytes of a line, up to and including its '\n'. */
static int feed_line(struct remoca_mc_parser *p, const uint8_t *in, size_t len, size_t *i,
                     struct remoca_mc_event *ev)
{
    const uint8_t *nl = memchr(in + *i, '\n', len - *i);
    size_t n = nl ? (size_t)(nl - (in + *i)) + 1 : len - *i;
    if (n > REMOCA_MC_LINE_MAX - p->line_len)
        return fail(p, REMOCA_MC_E_LINE, "response line longer than %u bytes", REMOCA_MC_LINE_MAX);
    memcpy(p->line + p->line_len, in + *i, n);
    p->line_len += (uint32_t)n;
    *i += n;
    return nl ? parse_line(p, ev) : 0;
}

/* Bytes of a value: into the destination (or dropped), then its CRLF. */
static int feed_data(struct remoca_mc_parser *p, const uint8_t *in, size_t len, size_t *i,
                     struct remoca_mc_event *ev)
{
    if (p->state == ST_DATA) {
        size_t n = len - *i < p->size - p->got ? len - *i : p->size - p->got;
        if (p->dest) memcpy(p->dest + p->got, in + *i, n);
        p->got += (uint32_t)n;
        *i += n;
        if (p->got == p->size) p->state = ST_CR;
        return 0;
    }
    uint8_t want = p->state == ST_CR ? '\r' : '\n';
    if (in[(*i)++] != want)
        return fail(p, REMOCA_MC_E_CRLF, "value of %u bytes not followed by CRLF", p->size);
    if (p->state == ST_CR) {
        p->state = ST_LF;
        return 0;
    }
    p->state = ST_LINE;
    *ev = p->va;
    ev->kind = REMOCA_MC_VALUE;
    ev->stored = p->dest != NULL;
    if (p->dest == (uint8_t *)p->num && parse_num(p->num, p->size, UINT64_MAX, &ev->number))
        return fail(p, REMOCA_MC_E_NUMBER, "value is not a number");
    p->dest = NULL;
    return 1;
}

int remoca_mc_parse(struct remoca_mc_parser *p, const void *in, size_t len, size_t *used,
                    struct remoca_mc_event *ev)
{
    const uint8_t *b = in;
    size_t i = 0;
    int r = 0;
    memset(ev, 0, sizeof *ev);
    if (p->err) {
        *used = 0;
        return -1;
    }
    while (r == 0 && i < len)
        r = p->state == ST_LINE ? feed_line(p, b, len, &i, ev) : feed_data(p, b, len, &i, ev);
    *used = i;
    if (r < 0) ev->kind = REMOCA_MC_NONE;
    return r;
}

int remoca_mc_parser_dest(struct remoca_mc_parser *p, void *dest, size_t cap)
{
    if (p->err) return -1;
    if (p->state != ST_DATA || p->got != 0 || p->dest == (uint8_t *)p->num)
        return fail(p, REMOCA_MC_E_STATE, "destination given outside a value");
    if (cap < p->size)
        return fail(p, REMOCA_MC_E_SIZE, "value of %u bytes, destination of %zu", p->size, cap);
    p->dest = dest;
    return 0;
}

const char *remoca_mc_parser_error(const struct remoca_mc_parser *p) { return p->why; }

const char *remoca_mc_kind_name(enum remoca_mc_kind k)
{
    static const char *const names[] = {
        [REMOCA_MC_NONE] = "none",
        [REMOCA_MC_HD] = "HD",
        [REMOCA_MC_VA] = "VA",
        [REMOCA_MC_VALUE] = "value",
        [REMOCA_MC_EN] = "EN",
        [REMOCA_MC_NF] = "NF",
        [REMOCA_MC_NS] = "NS",
        [REMOCA_MC_EX] = "EX",
        [REMOCA_MC_MN] = "MN",
        [REMOCA_MC_ERROR] = "ERROR",
        [REMOCA_MC_CLIENT_ERROR] = "CLIENT_ERROR",
        [REMOCA_MC_SERVER_ERROR] = "SERVER_ERROR",
    };
    return (unsigned)k < sizeof names / sizeof names[0] && names[k] ? names[k] : "unknown";
}
