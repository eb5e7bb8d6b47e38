#include "trace/trace-export.h"
