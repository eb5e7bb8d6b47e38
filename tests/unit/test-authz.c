/*
 * authz-simple and authz-list from their -object strings: rule order,
 * exact and glob formats, the default policy, and the errors of a bad list.
 */
#include "authz/authz.h"
#include "../support/test-cases.h"

#include <string.h>

static QAuthZ *authz_new(const char *optstr)
{
    g_autoptr(GError) err = NULL;
    Object *obj = object_create_from_string(optstr, &err);
    QAuthZ *authz;

    g_assert_no_error(err);
    g_assert_nonnull(obj);
    authz = qauthz_find(obj->id, &err);
    g_assert_no_error(err);
    return authz;
}

static void assert_rejected(const char *optstr, const char *fragment)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(object_create_from_string(optstr, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, fragment)) {
        g_error("'%s': expected an error with '%s', got '%s'", optstr, fragment, err->message);
    }
}

/* What one authz object must say of each identity, in order. */
typedef struct Decision {
    const char *identity;
    bool allowed;
} Decision;

static void assert_decisions_n(const char *optstr, const Decision *d, size_t n)
{
    QAuthZ *a = authz_new(optstr);

    for (size_t i = 0; i < n; i++) {
        if (qauthz_is_allowed(a, d[i].identity) != d[i].allowed) {
            g_error("'%s': expected '%s' to be %s", optstr, d[i].identity,
                    d[i].allowed ? "allowed" : "denied");
        }
    }
    object_destroy_all();
}

#define assert_decisions(optstr, d) assert_decisions_n(optstr, d, G_N_ELEMENTS(d))

static void test_simple(void)
{
    static const Decision d[] = {
        { "CN=client,O=Example,C=GB", true },
        { "CN=client,O=Example", false },
        { "CN=other,O=Example,C=GB", false },
        { "", false },
    };

    assert_decisions("authz-simple,id=s,identity=CN=client,,O=Example,,C=GB", d);
}

static void test_list_first_match_wins(void)
{
    static const Decision d[] = {
        { "CN=client,O=Example,C=GB", true },
        { "CN=mallory,O=Example,C=GB", false },
        { "CN=admin", true },
        { "CN=client,O=Other,C=GB", false },
        /* exact is exact: no glob, no prefix */
        { "CN=admin2", false },
    };

    assert_decisions("authz-list,id=l,policy=deny,"
                     "rules.0.match=CN=mallory*,rules.0.policy=deny,rules.0.format=glob,"
                     "rules.1.match=CN=*,,O=Example,,C=GB,rules.1.policy=allow,"
                     "rules.1.format=glob,"
                     "rules.2.match=CN=admin,rules.2.policy=allow", d);
}

static void test_list_default_policy(void)
{
    QAuthZ *deny = authz_new("authz-list,id=d");
    QAuthZ *allow = authz_new("authz-list,id=a,policy=allow,rules.0.match=CN=bad,"
                              "rules.0.policy=deny");

    g_assert_false(qauthz_is_allowed(deny, "CN=anyone"));
    g_assert_true(qauthz_is_allowed(allow, "CN=anyone"));
    g_assert_false(qauthz_is_allowed(allow, "CN=bad"));
    object_destroy_all();
}

static void test_list_glob_wildcards(void)
{
    static const Decision d[] = {
        { "CN=node1,O=Example", true },
        { "CN=node9,O=", true },
        { "CN=node10,O=Example", false },
        { "cn=node1,O=Example", false },
    };

    assert_decisions("authz-list,id=g,rules.0.match=CN=node?,,O=*,rules.0.policy=allow,"
                     "rules.0.format=glob", d);
}

static void test_errors(void)
{
    assert_rejected("authz-simple,id=x", "'identity' is missing");
    assert_rejected("authz-simple,identity=CN=a", "'id' is missing");
    assert_rejected("authz-list,id=x,policy=maybe", "'policy' does not accept value 'maybe'");
    assert_rejected("authz-list,id=x,rules.0.match=a", "'rules.0.policy' is missing");
    assert_rejected("authz-list,id=x,rules.1.match=a,rules.1.policy=allow", "'rules.0.match'");
    assert_rejected("authz-list,id=x,rules.0.match=a,rules.0.policy=allow,rules.0.format=regex",
                    "'rules.0.format' does not accept value 'regex'");
    assert_rejected("authz-list,id=x,rules.0.match=a,rules.0.policy=yes",
                    "'rules.0.policy' does not accept value 'yes'");
    assert_rejected("authz-list,id=x,rules.00.match=a,rules.00.policy=allow", "'rules.00.match'");
    assert_rejected("authz-list,id=x,rules.x.match=a", "'rules.x.match'");
    assert_rejected("authz-list,id=x,rules.99999.match=a", "'rules.99999.match'");
    assert_rejected("authz-list,id=x,rules.0.colour=red", "'rules.0.colour'");
    assert_rejected("authz-list,id=x,identity=a", "Invalid parameter 'identity'");
    assert_rejected("authz-nonsense,id=x", "invalid object type 'authz-nonsense'");
    assert_rejected("authz-list,id=9x", "expects an identifier");
    authz_new("authz-list,id=dup");
    assert_rejected("authz-simple,id=dup,identity=a", "duplicate object id 'dup'");
    object_destroy_all();
}

static void test_find(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(qauthz_find("nope", &err));
    g_assert_nonnull(strstr(err->message, "No authorization object with id 'nope'"));
    authz_new("authz-simple,id=s2,identity=x");
    g_assert_nonnull(qauthz_find("s2", NULL));
    g_assert_cmpstr(qauthz_id(qauthz_find("s2", NULL)), ==, "s2");
    object_destroy_all();
}

static const TestCase cases[] = {
    { "/authz/simple", test_simple },
    { "/authz/list/first-match-wins", test_list_first_match_wins },
    { "/authz/list/default-policy", test_list_default_policy },
    { "/authz/list/glob", test_list_glob_wildcards },
    { "/authz/errors", test_errors },
    { "/authz/find", test_find },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
