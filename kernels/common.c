#include "common.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char fb_error_buf[512];

const char *fb_status_name(fb_status s) {
    static const char *names[FB_STATUS_COUNT] = {
        [FB_OK] = "ok", [FB_ERR_SHAPE] = "bad shape", [FB_ERR_CONFIG] = "bad configuration",
        [FB_ERR_NONFINITE] = "non-finite value", [FB_ERR_ALLOC] = "out of memory",
        [FB_ERR_IO] = "I/O error", [FB_ERR_INTERNAL] = "internal error",
    };
    return (s >= 0 && s < FB_STATUS_COUNT) ? names[s] : "unknown status";
}

fb_status fb_fail(fb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fb_error_buf, sizeof fb_error_buf, fmt, ap);
    va_end(ap);
    return s;
}

const char *fb_last_error(void) { return fb_error_buf; }
void fb_clear_error(void) { fb_error_buf[0] = '\0'; }

long long fb_flops_counted_ = 0;

long long fb_flops_read(void) { return __atomic_load_n(&fb_flops_counted_, __ATOMIC_RELAXED); }
