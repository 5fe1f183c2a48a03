#include "projection.h"
#include <math.h>

fb_status proj_fit_allreduce(const double *bytes, const double *seconds, int n, double min_bytes, int p0,
                             proj_link *link) {
    FB_REQUIRE(p0 >= 2, FB_ERR_CONFIG, "projection: the allreduce was measured on %d rank(s); 2 or more needed", p0);
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!(bytes[i] >= min_bytes) || !isfinite(seconds[i])) continue;
        sx += bytes[i];
        sy += seconds[i];
        sxx += bytes[i] * bytes[i];
        sxy += bytes[i] * seconds[i];
        k++;
    }
    FB_REQUIRE(k >= 2, FB_ERR_CONFIG, "projection: %d allreduce sizes >= %g bytes to fit (2 or more needed)", k,
               min_bytes);
    const double den = k * sxx - sx * sx;
    FB_REQUIRE(den > 0, FB_ERR_CONFIG, "projection: the allreduce sizes do not vary");
    const double b = (k * sxy - sx * sy) / den, a = (sy - b * sx) / k;
    FB_REQUIRE(b > 0, FB_ERR_CONFIG, "projection: the fitted allreduce time does not grow with size (slope %g s/B)",
               b);
    link->alpha_s = (a > 0 ? a : 0) / (2.0 * (p0 - 1));
    link->beta_s_per_byte = b / (2.0 * (p0 - 1) / p0);
    return FB_OK;
}

// Ring allreduce, and an allgather (half of it).
static double ring(double bytes, int p, const proj_link *l) {
    return 2.0 * (p - 1) * l->alpha_s + 2.0 * (p - 1) / p * bytes * l->beta_s_per_byte;
}

static double gather(double bytes, int p, const proj_link *l) {
    return (p - 1) * l->alpha_s + (double)(p - 1) / p * bytes * l->beta_s_per_byte;
}

double proj_step(const proj_run *r, int nodes, int ranks, const proj_link *intra, const proj_link *inter) {
    if (ranks <= 1) return r->compute_s;
    const proj_link *l = nodes > 1 ? inter : intra;
    const double depth = ceil(log2((double)ranks));
    switch (r->strategy) {
    case PROJ_DDP:
        return r->compute_s + r->exposed * ring(r->grad_bytes, ranks, l);
    case PROJ_DDP_GATHERED:
        return r->compute_s + r->exposed * ring(r->grad_bytes, ranks, l) + gather(r->gather_bytes, ranks, l);
    case PROJ_DATAPARALLEL:
        return r->compute_s + 2.0 * depth * (l->alpha_s + r->grad_bytes * l->beta_s_per_byte) +
               gather((r->input_bytes + r->output_bytes) * ranks, ranks, l);
    }
    return NAN;
}
