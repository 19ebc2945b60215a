/* remoca stats --server ADDR [--json] [--secret-file FILE]: prints a memory
 * server's stats.
 *
 * ADDR is HOST:PORT ([v6]:PORT works) or unix:PATH.  The command speaks the
 * wire protocol directly (remoca/wire.h): HELLO, then STATS (with
 * REMOCA_F_JSON for --json), and prints the payload as the server sent it.
 * A server started with --secret answers the first HELLO with a challenge;
 * the command then proves it knows the secret (HMAC-SHA256 of the nonce and
 * the client name, docs/protocol.md "Authentication").
 * Exit status: 0 on success, 1 if the server cannot be reached or answers
 * wrongly, 2 on a usage error.  Every wait is bounded (5 s). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "commands.h"
#include "client_internal.h"
#include "client_sock.h"
#include "remoca/wire.h"

#define TIMEOUT_S 5

/* The address syntax and the bounded connect are libremoca's (lib/addr.c,
 * lib/client_sock.c), so `--server` accepts exactly what remoca-servers= does. */
static int connect_addr(const char *addr)
{
    struct remoca_addr a;
    char why[256];
    int fd = -1;
    if (remoca_addr_parse(addr, strlen(addr), &a, why, sizeof why) < 0 ||
        (fd = rc_sock_connect(&a, TIMEOUT_S * 1000, -1, why, sizeof why)) < 0) {
        fprintf(stderr, "remoca stats: cannot connect to %s: %s\n", addr, why);
        return -1;
    }
    struct timeval tv = {.tv_sec = TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends one request and reads its response; payload is malloc'd into *out.
 * With `status` set, a non-OK status is returned there instead of reported. */
static int call(int fd, const char *addr, struct remoca_hdr *req, const uint8_t *body,
                uint8_t **out, uint32_t *out_len, uint16_t *status)
{
    uint8_t buf[REMOCA_HDR_SIZE + 4 + 2 * REMOCA_MAX_NAME];
    remoca_hdr_encode(buf, req);
    if (req->len) memcpy(buf + REMOCA_HDR_SIZE, body, req->len);
    struct remoca_hdr resp;
    if (send_all(fd, buf, REMOCA_HDR_SIZE + req->len) < 0 ||
        recv_all(fd, buf, REMOCA_HDR_SIZE) < 0) {
        fprintf(stderr, "remoca stats: %s: connection lost: %s\n", addr,
                errno ? strerror(errno) : "closed by the server");
        return -1;
    }
    remoca_hdr_decode(buf, &resp);
    enum remoca_status st = remoca_resp_check(&resp, req->op, req->count);
    if (st != REMOCA_OK || resp.id != req->id) {
        fprintf(stderr, "remoca stats: %s: invalid response (%s)\n", addr,
                remoca_status_name(st));
        return -1;
    }
    uint8_t *payload = malloc((size_t)resp.len + 1);
    if (!payload || recv_all(fd, payload, resp.len) < 0) {
        fprintf(stderr, "remoca stats: %s: short response\n", addr);
        free(payload);
        return -1;
    }
    payload[resp.len] = 0;
    if (status) *status = resp.flags;
    if (resp.flags != REMOCA_OK && !status) {
        fprintf(stderr, "remoca stats: %s: %s failed: %s: %s\n", addr, remoca_op_name(req->op),
                remoca_status_name(resp.flags), (char *)payload);
        free(payload);
        return -1;
    }
    *out = payload;
    *out_len = resp.len;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: remoca stats --server ADDR [--json] [--secret-file FILE]\n"
               "  ADDR  HOST:PORT or unix:PATH of a remoca-memd\n"
               "  --json  print the stats as JSON instead of text\n"
               "  --secret-file FILE  the server's --secret (first line of FILE)\n"
               "  --secret SECRET     the same, on the command line\n");
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"secret", required_argument, NULL, 'S'},
        {"secret-file", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *server = NULL;
    bool json = false;
    char secret[512] = "";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'j': json = true; break;
        case 'S': snprintf(secret, sizeof secret, "%s", optarg); break;
        case 'F': {
            FILE *f = fopen(optarg, "r");
            if (!f || !fgets(secret, sizeof secret, f)) {
                fprintf(stderr, "remoca stats: --secret-file %s: %s\n", optarg,
                        f ? "empty" : strerror(errno));
                if (f) fclose(f);
                return 1;
            }
            fclose(f);
            secret[strcspn(secret, "\r\n")] = 0;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!server || optind < argc) {
        fprintf(stderr, "remoca stats: %s\n", server ? "unexpected argument" : "--server ADDR is required");
        usage(stderr);
        return 2;
    }
    int fd = connect_addr(server);
    if (fd < 0) return 1;

    uint8_t body[4 + 2 * REMOCA_MAX_NAME];
    struct remoca_hello hello = {.name = "remoca-stats", .name_len = 12};
    struct remoca_hdr req = {.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION,
                             .op = REMOCA_OP_HELLO, .id = 1};
    req.len = (uint32_t)remoca_hello_encode(body, sizeof body, &hello);
    uint8_t *payload;
    uint32_t len;
    uint16_t st;
    if (call(fd, server, &req, body, &payload, &len, &st) < 0) {
        close(fd);
        return 1;
    }
    uint8_t nonce[RC_AUTH_NONCE_BYTES];
    if (st == REMOCA_E_AUTH && rc_auth_parse_challenge((char *)payload, len, nonce)) {
        if (!secret[0]) {
            fprintf(stderr, "remoca stats: %s needs a secret (--secret-file FILE)\n", server);
            free(payload);
            close(fd);
            return 1;
        }
        uint8_t mac[RC_AUTH_MAC_BYTES];
        unsigned mlen;
        rc_auth_credential(secret, strlen(secret), nonce, hello.name, hello.name_len, mac, &mlen);
        free(payload);
        hello.cred = mac;
        hello.cred_len = mlen;
        req.id = 3;
        req.len = (uint32_t)remoca_hello_encode(body, sizeof body, &hello);
        if (call(fd, server, &req, body, &payload, &len, &st) < 0) {
            close(fd);
            return 1;
        }
    }
    if (st != REMOCA_OK) {
        fprintf(stderr, "remoca stats: %s: HELLO refused: %s%s\n", server,
                remoca_status_name(st), st == REMOCA_E_AUTH ? " (wrong secret?)" : "");
        free(payload);
        close(fd);
        return 1;
    }
    free(payload);
    req = (struct remoca_hdr){.magic = REMOCA_MAGIC_REQ, .version = REMOCA_VERSION,
                              .op = REMOCA_OP_STATS, .id = 2,
                              .flags = json ? REMOCA_F_JSON : 0};
    if (call(fd, server, &req, NULL, &payload, &len, NULL) < 0) {
        close(fd);
        return 1;
    }
    close(fd);
    fwrite(payload, 1, len, stdout);
    if (len && payload[len - 1] != '\n') putchar('\n');
    free(payload);
    return fflush(stdout) == 0 ? 0 : 1;
}
