/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: the "host:port" / "[v6]:port" syntax (lib/wire/hostport.c) shared by
 * the client's server lists (min port 1) and remoca-memd --listen (min port 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "remoca/hostport.h"

static struct remoca_hostport hp;
static char why[128];

static void expect_ok(const char *s, unsigned min_port, const char *host, const char *port, bool v6)
{
    why[0] = '\0';
    if (remoca_hostport_parse(s, min_port, &hp, why, sizeof why) != 0)
        fail_msg("'%s': refused: %s", s, why);
    assert_string_equal(hp.host, host);
    assert_string_equal(hp.port, port);
    assert_int_equal(hp.v6, v6);
}

static void expect_error(const char *s, unsigned min_port, const char *needle)
{
    why[0] = '\0';
    assert_int_equal(remoca_hostport_parse(s, min_port, &hp, why, sizeof why), -1);
    if (!strstr(why, needle)) fail_msg("'%s': reason '%s' lacks '%s'", s, why, needle);
}

static void test_forms(void **state)
{
    expect_ok("127.0.0.1:7400", 1, "127.0.0.1", "7400", false);
    expect_ok("mem-host_1.example:007", 1, "mem-host_1.example", "7", false);
    expect_ok("[::1]:9", 1, "::1", "9", true);
    expect_ok("[::ffff:10.0.0.1]:65535", 1, "::ffff:10.0.0.1", "65535", true);
    expect_error("localhost", 1, "expected host:port");
    expect_error("::1:7000", 1, "IPv6 needs [brackets]");
    expect_error("[::1]7000", 1, "expected ':port'");
    expect_error("[::1:7000", 1, "missing ']'");
    expect_error("[zz]:1", 1, "bad IPv6");
    expect_error("[]:1", 1, "empty host");
    expect_error(":1", 1, "empty host");
    expect_error("h:", 0, "missing port");
    expect_error("h:1x", 0, "not a number");
    expect_error("h:65536", 0, "port out of range");
    expect_error("h:99999999999999999999", 0, "port out of range");
    char longhost[REMOCA_HOST_MAX + 8];
    memset(longhost, 'a', REMOCA_HOST_MAX + 1);
    strcpy(longhost + REMOCA_HOST_MAX + 1, ":1");
    expect_error(longhost, 1, "host too long");
}

/* A client needs a real port; a server may ask for any free one. */
static void test_min_port(void **state)
{
    expect_error("h:0", 1, "port out of range");
    expect_ok("h:0", 0, "h", "0", false);
    expect_ok("[::]:000", 0, "::", "0", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_min_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
