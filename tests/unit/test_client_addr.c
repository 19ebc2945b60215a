/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: server list parsing (lib/client/addr.c) and client configuration errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client_internal.h"

static struct remoca_addr addrs[REMOCA_MAX_SERVERS];
static char err[256];

static int parse(const char *s)
{
    err[0] = '\0';
    return remoca_addr_parse_list(s, addrs, REMOCA_MAX_SERVERS, err, sizeof err);
}

static void test_good_entries(void **state)
{
    assert_int_equal(parse("127.0.0.1:7000"), 1);
    assert_int_equal(addrs[0].kind, REMOCA_ADDR_TCP);
    assert_string_equal(addrs[0].host, "127.0.0.1");
    assert_string_equal(addrs[0].port, "7000");
    assert_string_equal(addrs[0].canon, "tcp:127.0.0.1:7000");

    assert_int_equal(parse(" memhost-1.example:8080 , unix:/run/remoca.sock,[::1]:9,/tmp/x.sock,"
                           "tcp:h:0065535"),
                     5);
    assert_string_equal(addrs[0].canon, "tcp:memhost-1.example:8080");
    assert_int_equal(addrs[1].kind, REMOCA_ADDR_UNIX);
    assert_string_equal(addrs[1].path, "/run/remoca.sock");
    assert_string_equal(addrs[1].canon, "unix:/run/remoca.sock");
    assert_string_equal(addrs[2].host, "::1");
    assert_string_equal(addrs[2].canon, "tcp:[::1]:9");
    assert_string_equal(addrs[3].canon, "unix:/tmp/x.sock");
    assert_string_equal(addrs[4].port, "65535");
}

static void expect_error(const char *list, const char *needle);

/* memcached entries: the kind is part of the canonical name (placement seed). */
static void test_memcached_entries(void **state)
{
    assert_int_equal(parse("memcached:h:11211*3, memcached:[::1]:1,memcached:unix:/tmp/m.sock,"
                           "unix:/tmp/m.sock,memcached:/tmp/n.sock"),
                     5);
    assert_true(addrs[0].mc);
    assert_int_equal(addrs[0].kind, REMOCA_ADDR_TCP);
    assert_string_equal(addrs[0].canon, "memcached:tcp:h:11211");
    assert_int_equal(addrs[0].weight, 3);
    assert_string_equal(addrs[1].canon, "memcached:tcp:[::1]:1");
    assert_int_equal(addrs[2].kind, REMOCA_ADDR_UNIX);
    assert_string_equal(addrs[2].path, "/tmp/m.sock");
    assert_string_equal(addrs[2].canon, "memcached:unix:/tmp/m.sock");
    assert_false(addrs[3].mc); /* same socket, other kind: another server */
    assert_string_equal(addrs[3].canon, "unix:/tmp/m.sock");
    assert_string_equal(addrs[4].canon, "memcached:unix:/tmp/n.sock");
    expect_error("memcached:", "empty server entry");
    expect_error("memcached:h", "expected host:port");
    expect_error("memcached:memcached:h:1", "given twice");
    expect_error("memcached:h:1,memcached:tcp:h:1", "listed twice");
}

static void expect_error(const char *list, const char *needle)
{
    assert_int_equal(parse(list), -1);
    if (!strstr(err, needle)) fail_msg("'%s': error '%s' lacks '%s'", list, err, needle);
}

static void test_bad_entries(void **state)
{
    expect_error("", "empty entry");
    expect_error("a:1,,b:2", "empty entry 2");
    expect_error("a:1, ", "empty entry 2");
    expect_error("localhost", "expected host:port");
    expect_error("localhost:", "missing port");
    expect_error(":7000", "empty host");
    expect_error("h:0", "port out of range");
    expect_error("h:65536", "port out of range");
    expect_error("h:12x", "not a number");
    expect_error("::1:7000", "IPv6 needs [brackets]");
    expect_error("[::1]7000", "expected ':port'");
    expect_error("[::1:7000", "missing ']'");
    expect_error("[zz]:1", "bad IPv6");
    expect_error("unix:", "empty unix socket path");
    expect_error("h:1,h:1", "listed twice");
    expect_error("h:1,tcp:h:01", "listed twice");
    char longpath[200];
    memset(longpath, 'a', sizeof longpath);
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof longpath - 1] = '\0';
    expect_error(longpath, "unix socket path longer");
    assert_int_equal(remoca_addr_parse_list(NULL, addrs, 4, err, sizeof err), -1);
}

/* "ADDR*W": a weight 1..16 that is not part of the address. */
static void test_weights(void **state)
{
    struct remoca_addr a[4];
    char why[256];
    assert_int_equal(remoca_addr_parse_list("h:1*3, unix:/x*16 ,h:2", a, 4, why, sizeof why), 3);
    assert_int_equal(a[0].weight, 3);
    assert_string_equal(a[0].canon, "tcp:h:1");
    assert_int_equal(a[1].weight, 16);
    assert_string_equal(a[1].canon, "unix:/x");
    assert_int_equal(a[2].weight, 1);
    expect_error("h:1*0", "weight");
    expect_error("h:1*17", "weight");
    expect_error("h:1*", "weight");
    expect_error("h:1*x", "weight");
    expect_error("h:1*2,h:1*3", "listed twice"); /* same address, whatever the weight */
}

static void test_too_many(void **state)
{
    char list[4096] = "";
    for (unsigned i = 0; i <= REMOCA_MAX_SERVERS; i++) {
        char e[32];
        snprintf(e, sizeof e, "%sh%u:1", i ? "," : "", i);
        strcat(list, e);
    }
    expect_error(list, "too many");
}

static void test_client_config_errors(void **state)
{
    char e[256];
    struct remoca_client_opts o = {.servers = "h:", .pool = "p"};
    assert_null(remoca_client_new(&o, e, sizeof e));
    assert_non_null(strstr(e, "missing port"));
    o.servers = "unix:/nonexistent/x.sock";
    o.pool = "";
    assert_null(remoca_client_new(&o, e, sizeof e));
    assert_non_null(strstr(e, "pool name"));
    o.pool = "p";
    o.pool_min = 10;
    o.pool_max = 5;
    assert_null(remoca_client_new(&o, e, sizeof e));
    assert_non_null(strstr(e, "minimum"));
    o.pool_min = o.pool_max = 0;
    /* A server that is down is not a configuration error. */
    struct remoca_client *c = remoca_client_new(&o, e, sizeof e);
    assert_non_null(c);
    assert_int_equal(remoca_server_count(c), 1);
    remoca_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_entries), cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_weights),      cmocka_unit_test(test_memcached_entries),
        cmocka_unit_test(test_too_many),     cmocka_unit_test(test_client_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
