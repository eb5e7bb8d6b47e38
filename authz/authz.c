/*
 * authz-simple and authz-list (see include/authz/authz.h).
 */
#include "authz/authz.h"
#include "qemu/error.h"

#include <string.h>

typedef enum QAuthZListFormat {
    QAUTHZ_LIST_FORMAT_EXACT,
    QAUTHZ_LIST_FORMAT_GLOB,
} QAuthZListFormat;

typedef struct QAuthZListRule {
    char *match;
    bool allow;
    QAuthZListFormat format;
} QAuthZListRule;

struct QAuthZ {
    Object parent_obj;
    /* authz-simple: identity is one exact rule and the policy is deny. */
    GArray *rules;               /* QAuthZListRule */
    bool allow_by_default;
};

/* The most rules one list takes; a longer list is a typo, not a policy. */
#define QAUTHZ_LIST_MAX_RULES 1024

QAuthZ *qauthz_find(const char *id, GError **errp)
{
    Object *obj = object_find(id);

    if (!obj) {
        g_set_error(errp, VCCID_ERROR, 0, "No authorization object with id '%s'", id);
        return NULL;
    }
    if (!object_dynamic_cast(obj, TYPE_QAUTHZ)) {
        g_set_error(errp, VCCID_ERROR, 0, "Object with id '%s' is '%s', not an authorization object",
                    id, obj->klass->name);
        return NULL;
    }
    return (QAuthZ *)obj;
}

const char *qauthz_id(QAuthZ *authz)
{
    return authz->parent_obj.id;
}

bool qauthz_is_allowed(QAuthZ *authz, const char *identity)
{
    for (guint i = 0; i < authz->rules->len; i++) {
        const QAuthZListRule *r = &g_array_index(authz->rules, QAuthZListRule, i);
        bool match = r->format == QAUTHZ_LIST_FORMAT_GLOB
                     ? g_pattern_match_simple(r->match, identity)
                     : strcmp(r->match, identity) == 0;

        if (match) {
            return r->allow;
        }
    }
    return authz->allow_by_default;
}

static void qauthz_rule_clear(gpointer data)
{
    g_free(((QAuthZListRule *)data)->match);
}

static QAuthZ *qauthz_new(void)
{
    QAuthZ *authz = g_new0(QAuthZ, 1);

    authz->rules = g_array_new(FALSE, TRUE, sizeof(QAuthZListRule));
    g_array_set_clear_func(authz->rules, qauthz_rule_clear);
    return authz;
}

static void qauthz_free(QAuthZ *authz)
{
    g_array_unref(authz->rules);
    g_free(authz);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QAuthZ, qauthz_free)

static void qauthz_finalize(Object *obj)
{
    qauthz_free((QAuthZ *)obj);
}

static bool qauthz_parse_policy(const char *key, const char *value, bool *allow, GError **errp)
{
    if (strcmp(value, "allow") == 0 || strcmp(value, "deny") == 0) {
        *allow = value[0] == 'a';
        return true;
    }
    g_set_error(errp, VCCID_ERROR, 0, "Parameter '%s' does not accept value '%s' (allow or deny)",
                key, value);
    return false;
}

static Object *authz_simple_create(const char *id, QemuOpts *opts, GError **errp)
{
    const char *identity = qemu_opt_take(opts, "identity");
    QAuthZListRule rule = { .allow = true, .format = QAUTHZ_LIST_FORMAT_EXACT };
    QAuthZ *authz;

    if (!identity) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'identity' is missing");
        return NULL;
    }
    authz = qauthz_new();
    rule.match = g_strdup(identity);
    g_array_append_val(authz->rules, rule);
    return &authz->parent_obj;
}

/*
 * "rules.N.FIELD": N is a decimal index without leading zeros, as QEMU's
 * keyval parser takes a list; the indices must run 0, 1, ... with no gap.
 */
static bool qauthz_list_parse_rule_key(const char *key, guint *index, const char **field)
{
    const char *p = key + strlen("rules.");
    char *end;
    guint64 n;

    if (!g_ascii_isdigit(*p) || (p[0] == '0' && g_ascii_isdigit(p[1]))) {
        return false;
    }
    n = g_ascii_strtoull(p, &end, 10);
    if (*end != '.' || n >= QAUTHZ_LIST_MAX_RULES) {
        return false;
    }
    *index = n;
    *field = end + 1;
    return true;
}

static bool qauthz_list_set_rule_field(QAuthZListRule *r, bool *has_policy, const char *key,
                                       const char *field, const char *value, GError **errp)
{
    if (strcmp(field, "match") == 0) {
        g_free(r->match);
        r->match = g_strdup(value);
    } else if (strcmp(field, "policy") == 0) {
        if (!qauthz_parse_policy(key, value, &r->allow, errp)) {
            return false;
        }
        *has_policy = true;
    } else if (strcmp(field, "format") == 0) {
        if (strcmp(value, "exact") == 0) {
            r->format = QAUTHZ_LIST_FORMAT_EXACT;
        } else if (strcmp(value, "glob") == 0) {
            r->format = QAUTHZ_LIST_FORMAT_GLOB;
        } else {
            g_set_error(errp, VCCID_ERROR, 0,
                        "Parameter '%s' does not accept value '%s' (exact or glob)", key, value);
            return false;
        }
    } else {
        g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter '%s' (a rule has match, policy "
                    "and format)", key);
        return false;
    }
    return true;
}

static Object *authz_list_create(const char *id, QemuOpts *opts, GError **errp)
{
    g_autoptr(QAuthZ) authz = qauthz_new();
    g_autofree bool *has_policy = g_new0(bool, QAUTHZ_LIST_MAX_RULES);
    const char *policy = qemu_opt_take(opts, "policy");

    if (policy && !qauthz_parse_policy("policy", policy, &authz->allow_by_default, errp)) {
        return NULL;
    }
    for (guint i = 0; i < opts->opts->len; i++) {
        QemuOpt *opt = g_ptr_array_index(opts->opts, i);
        const char *field;
        guint n;

        if (!g_str_has_prefix(opt->key, "rules.")) {
            continue;
        }
        if (!qauthz_list_parse_rule_key(opt->key, &n, &field)) {
            g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter '%s' (expected rules.N.match, "
                        "rules.N.policy or rules.N.format, N < %d)", opt->key,
                        QAUTHZ_LIST_MAX_RULES);
            return NULL;
        }
        opt->used = true;
        if (n >= authz->rules->len) {
            g_array_set_size(authz->rules, n + 1);
        }
        if (!qauthz_list_set_rule_field(&g_array_index(authz->rules, QAuthZListRule, n),
                                        &has_policy[n], opt->key, field, opt->value, errp)) {
            return NULL;
        }
    }
    for (guint n = 0; n < authz->rules->len; n++) {
        const QAuthZListRule *r = &g_array_index(authz->rules, QAuthZListRule, n);

        if (!r->match || !has_policy[n]) {
            g_set_error(errp, VCCID_ERROR, 0, "Parameter 'rules.%u.%s' is missing", n,
                        r->match ? "policy" : "match");
            return NULL;
        }
    }
    return &g_steal_pointer(&authz)->parent_obj;
}

static const ObjectClass authz_simple_class = {
    .name = "authz-simple",
    .parent = TYPE_QAUTHZ,
    .usage = "authz-simple,id=ID,identity=DN   allow one TLS identity",
    .create = authz_simple_create,
    .finalize = qauthz_finalize,
};

static const ObjectClass authz_list_class = {
    .name = "authz-list",
    .parent = TYPE_QAUTHZ,
    .usage = "authz-list,id=ID[,policy=deny|allow][,rules.N.match=STR,rules.N.policy=allow|deny"
             "[,rules.N.format=exact|glob]]...\n"
             "                       first matching rule decides, else policy",
    .create = authz_list_create,
    .finalize = qauthz_finalize,
};

static void authz_register_types(void)
{
    object_class_register(&authz_simple_class);
    object_class_register(&authz_list_class);
}
object_type_init(authz_register_types)
