/*
 * A test binary's plain tests as one const table, path beside function, in
 * the order they run: a new test is a line in its file's table, and main()
 * stays g_test_init(), test_add_cases() and g_test_run() with whatever the
 * binary sets up around them.
 */
#ifndef TEST_CASES_H
#define TEST_CASES_H

#include <glib.h>

typedef struct TestCase {
    const char *path;
    GTestFunc fn;
} TestCase;

/* One row of a table-driven test: what it is given, and what must come of it. */
typedef struct StringCase {
    const char *input;
    const char *expected;
} StringCase;

static inline void test_add_cases_n(const TestCase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_test_add_func(cases[i].path, cases[i].fn);
    }
}

#define test_add_cases(cases) test_add_cases_n(cases, G_N_ELEMENTS(cases))

#endif
