/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: SIZE arguments (lib/wire/size.c), as remoca-memd --memory and
 * remoca serve --memory take them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "remoca/size.h"

static uint64_t size_of(const char *s)
{
    uint64_t v = 12345;
    assert_int_equal(parse_size(s, &v), 0);
    return v;
}

static void test_good_sizes(void **state)
{
    assert_int_equal(size_of("0"), 0);
    assert_int_equal(size_of("4096"), 4096);
    assert_int_equal(size_of("1k"), 1024);
    assert_int_equal(size_of("64M"), 64ull << 20);
    assert_int_equal(size_of("64MB"), 64ull << 20);
    assert_int_equal(size_of("512MiB"), 512ull << 20);
    assert_int_equal(size_of("2g"), 2ull << 30);
    assert_int_equal(size_of("15T"), 15ull << 40);
    assert_int_equal(size_of("100b"), 100);
    assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
}

static void test_bad_sizes(void **state)
{
    const char *bad[] = {"",
                         "M",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "12abc",
                         "1X",
                         "1MiBB",
                         "1iB",
                         "0x10",
                         "1.5G",
                         "18446744073709551616",
                         "16777216T",
                         NULL};
    for (const char **s = bad; *s; s++) {
        uint64_t v = 7;
        if (parse_size(*s, &v) != -1) fail_msg("'%s' accepted as %llu", *s, (unsigned long long)v);
        assert_int_equal(v, 7); /* untouched on error */
    }
    assert_int_equal(parse_size(NULL, &(uint64_t){0}), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_sizes),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
