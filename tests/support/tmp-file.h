/*
 * A temporary file with given contents, for the tests that hand a daemon or
 * a parser a file to read (-trace events=, trace_apply_events_file()).
 */
#ifndef TESTS_SUPPORT_TMP_FILE_H
#define TESTS_SUPPORT_TMP_FILE_H

#include <glib.h>
#include <unistd.h>

/* A new temporary file holding text: its path, for the caller to unlink and free. */
static inline char *test_tmp_file_holding(const char *text)
{
    g_autoptr(GError) err = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("vccid-test-XXXXXX", &path, &err);

    g_assert_no_error(err);
    close(fd);
    g_assert_true(g_file_set_contents(path, text, -1, &err));
    g_assert_no_error(err);
    return path;
}

#endif
