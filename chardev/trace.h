#include "trace/trace-chardev.h"
