#include "trace/trace-hw_usb.h"
