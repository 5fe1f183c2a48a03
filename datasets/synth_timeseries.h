// The time-series forecaster's synthetic world (000): daily series whose value is a sum of a slow
// trend, a weekly profile, a yearly cycle, calendar effects (end and start of month, holidays),
// slow periodic "celestial" terms (the phases of the Moon, Venus, Mars, Jupiter - Saturn) and their
// interaction with the calendar (weekend x Moon, month end / holiday x Venus), plus noise, each
// scaled by a strength, so the deep (calendar) and shallow (celestial) paths both carry signal and
// their fusion matters. Deterministic in (seed, channel, day); no files, no model.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define FB_TS_BODIES 13          // celestial bodies (tokens of the shallow path)
#define FB_TS_SPAN_DAYS 14610    // sample windows start within 40 years from 2000-01-01

// Strengths of the components of channel 0 (the forecast target); other channels carry trend,
// yearly cycle and noise only. fb_synth_ts_defaults(): every strength 1, noise 0.3.
typedef struct { double trend, weekly, yearly, calendar, celestial, interaction, noise; } fb_synth_ts_world;
fb_synth_ts_world fb_synth_ts_defaults(void);
// Parses "name=value,..." (names as the fields) over *w; 0, or -1 with a reason in why.
int fb_synth_ts_parse(const char *spec, fb_synth_ts_world *w, char *why, size_t size);

typedef struct { int dow, month, quarter, dom, doy, weekend, month_start, month_end, holiday; } fb_ts_date;
fb_ts_date fb_synth_ts_calendar(int64_t day);                  // day 0 = 2000-01-01; dow 0 = Monday
double fb_synth_ts_phase(int body, int64_t day);               // radians
double fb_synth_ts_value(const fb_synth_ts_world *w, uint64_t seed, int channel, int64_t day);
int64_t fb_synth_ts_start(uint64_t seed, uint64_t index);      // first day of sample `index`'s window
