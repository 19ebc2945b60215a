/* SPDX-License-Identifier: BSD-3-Clause */
/* Socket helpers of the client core (lib/client/client_sock.c). */
#ifndef REMOCA_CLIENT_SOCK_H
#define REMOCA_CLIENT_SOCK_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct remoca_addr;

/* Connects to a server (TCP_NODELAY, keepalive for TCP) within timeout_ms;
 * returns a blocking socket, or -1 with a reason in why. */
int rc_sock_connect(const struct remoca_addr *a, unsigned timeout_ms, int stop_fd, char *why,
                    size_t whylen);

/* Writes every byte of iov before the deadline; the iov array is consumed.
 * 0, or -1 with errno (ETIMEDOUT: the peer is not reading) and a reason in
 * why; *sent (if not NULL) says how many bytes were written either way.
 * flags: extra sendmsg flags (MSG_MORE). */
int rc_sock_send(int fd, struct iovec *iov, int iovcnt, const struct timespec *deadline, int flags,
                 size_t *sent, char *why, size_t whylen);

/* One recv(); with a deadline, waits for data first (errno ETIMEDOUT, or
 * ECANCELED when stop_fd becomes readable).  Without one, it blocks, up to
 * the socket's SO_RCVTIMEO (then -1, errno EAGAIN).  >0 bytes, 0 at EOF,
 * -1 error. */
ssize_t rc_sock_recv(int fd, void *p, size_t n, const struct timespec *deadline, int stop_fd);

/* One recvmsg() that keeps descriptors passed with the bytes (SCM_RIGHTS,
 * close-on-exec: a recv without a control buffer would discard them); waits
 * for data until the deadline like rc_sock_recv.  Descriptors received are
 * appended to fds (*nfds of them), those beyond maxfds closed.  >0 bytes, 0
 * at EOF, -1 error. */
#define RC_SOCK_MAX_FDS 8u
ssize_t rc_sock_recv_fds(int fd, void *p, size_t n, int *fds, unsigned *nfds, unsigned maxfds,
                         const struct timespec *deadline, int stop_fd);

/* One readv(), retried on EINTR. */
ssize_t rc_sock_readv(int fd, struct iovec *iov, int iovcnt);

/* Consumes n transferred bytes from the front of the iov array (and its count). */
void rc_iov_advance(struct iovec **iov, int *iovcnt, size_t n);

#endif
