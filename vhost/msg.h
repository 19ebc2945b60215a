/* SPDX-License-Identifier: BSD-3-Clause */
/* vhost-user messages: reading one from the socket with its fds
 * (SCM_RIGHTS), checking it against what its request allows, and writing
 * replies.  Everything the front end sends is untrusted: a message that fails
 * a check here never reaches a handler, and the connection is closed.
 *
 *   struct vu_msg (one message, as received)
 *   ┌────────────────┬────────────────────────────┬───────────────────────┐
 *   │ hdr (12 bytes) │ payload (hdr.size bytes,   │ fds[nfds], nfds <= 8  │
 *   │ request, flags,│ <= sizeof(union vu_payload)│ owned by the message: │
 *   │ size           │ rest of the union zeroed)  │ vu_msg_close_fds()    │
 *   └────────────────┴────────────────────────────┴───────────────────────┘
 */
#ifndef REMOCA_VHOST_MSG_H
#define REMOCA_VHOST_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

struct vu_msg {
    struct vu_hdr hdr;
    union vu_payload p;
    int fds[VU_MAX_FDS];
    unsigned nfds;
};

/* Reads one message.  1: a message (check it with vu_msg_check); 0: the peer
 * closed the connection cleanly between messages; -1: error, message in err
 * (the connection must be closed).  Received fds are close-on-exec. */
int vu_msg_recv(int sock, struct vu_msg *m, char *err, size_t errlen);

/* Decodes a message from bytes (the fuzzer's and unit tests' entry): same
 * checks as vu_msg_recv on the header and size; fds are given.  Returns the
 * bytes consumed, 0 if more are needed, -1 if invalid. */
long vu_msg_parse(const void *buf, size_t len, const int *fds, unsigned nfds, struct vu_msg *m,
                  char *err, size_t errlen);

/* Checks a message's size and fd count against its request: 0, or -1 with a
 * message in err.  Unknown requests fail here. */
int vu_msg_check(const struct vu_msg *m, char *err, size_t errlen);

/* Closes the fds a message still owns (a handler takes one by setting it to
 * -1 in fds[]). */
void vu_msg_close_fds(struct vu_msg *m);

/* Sends a reply to request `request` with `size` bytes of payload p. 0 or -1. */
int vu_msg_reply(int sock, uint32_t request, const void *p, uint32_t size);

const char *vu_request_name(uint32_t request);

#endif
