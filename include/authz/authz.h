/*
 * Authorization, as QEMU spells it: an "authz" object answers whether an
 * identity (here the distinguished name of a TLS peer's certificate, as
 * GnuTLS prints it: "CN=client,O=Example,C=GB") may use a service.
 *
 *   -object authz-simple,id=ID,identity=DN
 *       exactly one identity is allowed
 *   -object authz-list,id=ID[,policy=deny|allow]
 *       [,rules.N.match=STR,rules.N.policy=allow|deny[,rules.N.format=exact|glob]]...
 *       rules are tried in order N = 0, 1, ...; the first that matches
 *       decides; if none does, policy (default deny) decides. A glob
 *       knows * and ? (g_pattern_match_simple).
 */
#ifndef AUTHZ_AUTHZ_H
#define AUTHZ_AUTHZ_H

#include <stdbool.h>

#include "qom/object.h"

#define TYPE_QAUTHZ "authz"

typedef struct QAuthZ QAuthZ;

/* The authz object with this id, or NULL and errp set. */
QAuthZ *qauthz_find(const char *id, GError **errp);
const char *qauthz_id(QAuthZ *authz);
bool qauthz_is_allowed(QAuthZ *authz, const char *identity);

#endif
