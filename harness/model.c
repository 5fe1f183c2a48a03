#include "model.h"
#include <stdio.h>
#include <string.h>

static const scenario *const scenarios[] = { &scenario_timeseries, &scenario_multimodal, &scenario_microbiome };
#define NSCENARIOS ((int)(sizeof scenarios / sizeof scenarios[0]))

const scenario *scenario_find(const char *name) {
    for (int i = 0; i < NSCENARIOS; i++)
        if (strcmp(scenarios[i]->name, name) == 0) return scenarios[i];
    return NULL;
}

fb_status model_create(model *m, const scenario *s, const model_config *c, fb_layout *P, fb_layout *A) {
    memset(m, 0, sizeof *m);
    FB_REQUIRE(s, FB_ERR_CONFIG, "model: no scenario given (known: timeseries, multimodal, microbiome)");
    const fusion_method *fm = fusion_find(c->method ? c->method : "");
    if (!fm) {
        char known[1024] = "";
        size_t used = 0;
        for (int i = 0; i < FUSION_METHOD_COUNT && used < sizeof known; i++)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", fusion_methods[i]->name);
        return fb_fail(FB_ERR_CONFIG, "%s: unknown method '%s' (known: %s)", s->name, c->method ? c->method : "", known);
    }
    char why[256];
    if (s->fits(fm, why, sizeof why) != 0) {
        char fitting[1024] = "";
        size_t used = 0;
        for (int i = 0; i < FUSION_METHOD_COUNT && used < sizeof fitting; i++) {
            char tmp[256];
            if (s->fits(fusion_methods[i], tmp, sizeof tmp) == 0)
                used += (size_t)snprintf(fitting + used, sizeof fitting - used, "%s%s", used ? ", " : "", fusion_methods[i]->name);
        }
        return fb_fail(FB_ERR_CONFIG, "method %s does not fit the %s scenario (%s); methods that do: %s", fm->name,
                       s->name, why, fitting);
    }
    m->s = s;
    m->c = *c;
    m->method = fm;
    fb_status st = s->create(m, P, A);
    if (st != FB_OK) model_destroy(m);
    return st;
}

void model_destroy(model *m) {
    if (m->s && m->s->destroy) m->s->destroy(m);
    m->self = NULL;
    m->n_points = 0;   // they lived in self
}

void model_fusion_options(const model_config *c, fusion_config *fc) {
    fc->variant = c->variant;
    fc->dropout = c->dropout;
    if (c->gate_bias_set) fc->gate_bias = c->gate_bias;
    if (c->cost_budget > 0) fc->cost_budget = c->cost_budget;
}

fb_status model_add_fusion_point(model *m, fusion *f, const char *name) {
    FB_REQUIRE(m->n_points < MODEL_MAX_FUSION_POINTS, FB_ERR_INTERNAL,
               "%s: more than %d fusion points (raise MODEL_MAX_FUSION_POINTS)", m->s ? m->s->name : "model",
               MODEL_MAX_FUSION_POINTS);
    m->points[m->n_points] = f;
    m->point_names[m->n_points] = name;
    m->n_points++;
    return FB_OK;
}

int model_fusion_points(const model *m, fusion **points, const char **names, int max) {
    const int n = m->n_points < max ? m->n_points : max;
    for (int i = 0; i < n; i++) {
        if (points) points[i] = m->points[i];
        if (names) names[i] = m->point_names[i];
    }
    return n < 0 ? 0 : n;
}
