#include "trace/trace-contrib_vscclient.h"
