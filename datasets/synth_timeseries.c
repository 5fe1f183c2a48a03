#include "synth_timeseries.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/rng.h"
#include "settings.h"

// Generator streams (step 0), far from any dropout site of the models.
#define TS_GEN_START 0x47000000u
#define TS_GEN_NOISE 0x47000100u

fb_synth_ts_world fb_synth_ts_defaults(void) { return (fb_synth_ts_world){1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3}; }

int fb_synth_ts_parse(const char *spec, fb_synth_ts_world *w, char *why, size_t size) {
    static const char *const names[] = {"trend", "weekly", "yearly", "calendar", "celestial", "interaction", "noise"};
    double v[7] = {w->trend, w->weekly, w->yearly, w->calendar, w->celestial, w->interaction, w->noise};
    if (fb_parse_settings(spec, names, v, 7, why, size) != 0) return -1;
    *w = (fb_synth_ts_world){v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
    return 0;
}

int64_t fb_synth_ts_start(uint64_t seed, uint64_t index) {
    const fb_rng_key start = {.seed = seed, .step = 0, .site = TS_GEN_START};
    return (int64_t)floor((double)fb_uniform(&start, index) * FB_TS_SPAN_DAYS);
}

// Sun, Moon, Mercury, Venus, Mars, Jupiter, Saturn, Uranus, Neptune, Pluto, North node, South
// node, Chiron: periods in days (negative: retrograde) and phases at day 0 in turns.
static const double ts_period[FB_TS_BODIES] = {365.256, 29.5306, 87.969, 224.701, 686.980, 4332.59, 10759.22,
                                            30688.5, 60182.0, 90560.0, -6798.38, -6798.38, 18518.0};
static const double ts_theta[FB_TS_BODIES] = {0.78, 0.12, 0.43, 0.61, 0.05, 0.37, 0.90, 0.22, 0.66, 0.49, 0.31, 0.81, 0.57};
static const double ts_weekly[7] = {0.4, 0.3, 0.2, 0.1, 0.3, -0.5, -0.8};   // Monday .. Sunday
#define TS_TWO_PI 6.283185307179586

// Days since 1970-01-01 of a Gregorian date (H. Hinnant's days_from_civil).
static int64_t ts_days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define TS_EPOCH 10957   // 2000-01-01 in days since 1970-01-01

fb_ts_date fb_synth_ts_calendar(int64_t t) {
    const int64_t z = t + TS_EPOCH + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy0 = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy0 + 2) / 153;
    const int d = (int)(doy0 - (153 * mp + 2) / 5 + 1);
    const int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    const int64_t y = yoe + era * 400 + (m <= 2);
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    const int dim = mdays[m - 1] + (m == 2 && leap);
    fb_ts_date c;
    c.dow = (int)((t + 5) % 7);   // 2000-01-01 was a Saturday; Monday = 0
    c.month = m - 1;
    c.quarter = (m - 1) / 3;
    c.dom = d;
    c.doy = (int)(t + TS_EPOCH - ts_days_from_civil(y, 1, 1));
    c.weekend = c.dow >= 5;
    c.month_start = d == 1;
    c.month_end = d == dim;
    c.holiday = (m == 1 && d == 1) || (m == 5 && d == 1) || (m == 7 && d == 4) || (m == 11 && d == 11) ||
                (m == 12 && (d == 25 || d == 26));
    return c;
}

double fb_synth_ts_phase(int k, int64_t t) { return TS_TWO_PI * ((double)t / ts_period[k] + ts_theta[k]); }

static double ts_noise(uint64_t seed, int channel, int64_t t) {
    const fb_rng_key key = {.seed = seed, .step = 0, .site = TS_GEN_NOISE + (uint32_t)channel};
    const double u1 = fb_uniform(&key, 2 * (uint64_t)t), u2 = fb_uniform(&key, 2 * (uint64_t)t + 1);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(TS_TWO_PI * u2);
}

double fb_synth_ts_value(const fb_synth_ts_world *g, uint64_t seed, int channel, int64_t t) {
    const fb_ts_date c = fb_synth_ts_calendar(t);
    const double trend = 0.6 * sin(TS_TWO_PI * (double)t / 1461.0 + 0.3);
    const double yearly = 0.5 * sin(TS_TWO_PI * c.doy / 365.25) + 0.25 * cos(2.0 * TS_TWO_PI * c.doy / 365.25);
    const double noise = ts_noise(seed, channel, t);
    if (channel > 0) return g->trend * trend + g->yearly * yearly + g->noise * noise;
    const double moon = fb_synth_ts_phase(1, t), venus = fb_synth_ts_phase(3, t), mars = fb_synth_ts_phase(4, t);
    const double jup = fb_synth_ts_phase(5, t), sat = fb_synth_ts_phase(6, t);
    const double weekly = ts_weekly[c.dow];
    const double calendar = 0.8 * c.month_end + 0.3 * c.month_start - 1.0 * c.holiday;
    const double celestial = 0.6 * cos(moon) + 0.4 * sin(mars) + 0.4 * cos(jup - sat) + 0.3 * sin(venus);
    const double interaction = (1.2 * c.weekend - 0.4) * cos(moon) + 0.8 * (c.month_end || c.holiday) * sin(venus);
    return g->trend * trend + g->weekly * weekly + g->yearly * yearly + g->calendar * calendar +
           g->celestial * celestial + g->interaction * interaction + g->noise * noise;
}

