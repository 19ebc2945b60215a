/* SPDX-License-Identifier: BSD-3-Clause */
/* --user: dropping root after start-up (see privdrop.h). */
#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int privdrop_lookup(const char *name, struct privdrop *p)
{
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        log_error("--user %s: %s", name, errno ? strerror(errno) : "no such user");
        return -1;
    }
    if (pw->pw_uid == 0) {
        log_error("--user %s: that is root", name);
        return -1;
    }
    p->name = name;
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    return 0;
}

int privdrop_apply(const struct privdrop *p)
{
    if (geteuid() != 0) {
        if (getuid() == p->uid && geteuid() == p->uid) return 0;
        log_error("--user %s: not started as root (uid %u)", p->name, (unsigned)geteuid());
        return -1;
    }
    if (initgroups(p->name, p->gid) < 0 || setgid(p->gid) < 0 || setuid(p->uid) < 0) {
        log_error("--user %s: %s", p->name, strerror(errno));
        return -1;
    }
    /* Every id must be the user's now, and root out of reach for good. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != p->uid ||
        eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid ||
        setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
        log_error("--user %s: root privileges could not be dropped for good", p->name);
        return -1;
    }
    log_info("running as user %s (uid %u, gid %u)", p->name, (unsigned)p->uid, (unsigned)p->gid);
    return 0;
}
