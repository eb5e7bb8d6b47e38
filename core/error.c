#include "qemu/error.h"

G_DEFINE_QUARK(vccid-error-quark, vccid_error)
