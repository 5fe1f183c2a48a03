#include "loss.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// Elements per partial sum of the pointwise losses. Fixed (not per thread) so that the order of the
// double additions, and therefore the loss's bits, do not depend on the thread count.
#define LOSS_CHUNK 4096

typedef enum { PW_MSE, PW_HUBER } pointwise_kind;

// MSE and Huber: one pass over fixed chunks; each chunk's loss sum is a double partial, the
// partials are added in chunk order; the gradient is elementwise.
static fb_status pointwise_loss(const char *name, pointwise_kind kind, double *loss, float *dpred,
                                const float *pred, const float *target, size_t n, double delta,
                                float grad_scale) {
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "%s: n=%zu elements, must be > 0", name, n);
    FB_REQUIRE(pred && target, FB_ERR_SHAPE, "%s: missing pred or target", name);
    // The loss sum runs whether or not *loss is asked for; the gradient when dpred is given.
    fb_flops_add(kind == PW_MSE ? mse_loss_flops(n, dpred != NULL) : huber_loss_flops(n, dpred != NULL));
    size_t nchunks = (n + LOSS_CHUNK - 1) / LOSS_CHUNK;
    double *part = malloc(nchunks * sizeof(double));
    FB_REQUIRE(part, FB_ERR_ALLOC, "%s: no memory for %zu partial sums", name, nchunks);
    // dL/dpred = gscale * g with g = r (MSE, times 2) or clamp(r, -delta, delta) (Huber).
    double gscale = (kind == PW_MSE ? 2.0 : 1.0) * (double)grad_scale / (double)n;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * LOSS_CHUNK, i1 = i0 + LOSS_CHUNK < n ? i0 + LOSS_CHUNK : n;
        double s = 0;
        for (size_t i = i0; i < i1; i++) {
            double r = (double)pred[i] - (double)target[i], g;  // exact: a float difference in double
            if (kind == PW_MSE) {
                s += r * r;
                g = r;
            } else {
                double a = fabs(r);
                s += a < delta ? 0.5 * r * r : delta * (a - 0.5 * delta);
                g = r > delta ? delta : r < -delta ? -delta : r;  // NaN stays NaN
            }
            if (dpred) dpred[i] += (float)(gscale * g);
        }
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nchunks; c++) s += part[c];
    free(part);
    if (loss) *loss = s / (double)n;
    return FB_OK;
}

fb_status mse_loss(double *loss, float *dpred, const float *pred, const float *target, size_t n,
                   float grad_scale) {
    return pointwise_loss("mse_loss", PW_MSE, loss, dpred, pred, target, n, 0.0, grad_scale);
}

fb_status huber_loss(double *loss, float *dpred, const float *pred, const float *target, size_t n,
                     float delta, float grad_scale) {
    FB_REQUIRE(delta > 0.0f && isfinite(delta), FB_ERR_CONFIG, "huber_loss: delta=%g must be finite and > 0",
               (double)delta);
    return pointwise_loss("huber_loss", PW_HUBER, loss, dpred, pred, target, n, delta, grad_scale);
}

fb_status cross_entropy_loss(double *loss, float *dlogits, const float *logits, const int32_t *labels,
                             int B, int C, float grad_scale) {
    FB_REQUIRE(B > 0 && C > 0, FB_ERR_SHAPE, "cross_entropy_loss: sizes B=%d C=%d must both be > 0", B, C);
    FB_REQUIRE(logits && labels, FB_ERR_SHAPE, "cross_entropy_loss: missing logits or labels");
    for (int b = 0; b < B; b++)
        FB_REQUIRE(labels[b] >= 0 && labels[b] < C, FB_ERR_CONFIG,
                   "cross_entropy_loss: label %d of row %d outside [0, C=%d)", (int)labels[b], b, C);
    double *row = malloc((size_t)B * sizeof(double));
    FB_REQUIRE(row, FB_ERR_ALLOC, "cross_entropy_loss: no memory for %d row losses", B);
    fb_flops_add(cross_entropy_loss_flops(B, C, dlogits != NULL));
    double gscale = (double)grad_scale / (double)B;
    // One row per iteration, its sums in column order: the same bits on any thread count.
    #pragma omp parallel for schedule(static) if ((size_t)B * C > FB_OMP_MIN_WORK)
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * C;
        float m = x[0];
        for (int c = 1; c < C; c++) if (x[c] > m) m = x[c];
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp((double)x[c] - m);
        int y = labels[b];
        row[b] = ((double)m - x[y]) + log(sum);
        if (dlogits) {
            float *g = dlogits + (size_t)b * C;
            double inv = 1.0 / sum;
            for (int c = 0; c < C; c++) {
                double p = exp((double)x[c] - m) * inv - (c == y ? 1.0 : 0.0);
                g[c] += (float)(gscale * p);
            }
        }
    }
    double s = 0;
    for (int b = 0; b < B; b++) s += row[b];
    free(row);
    if (loss) *loss = s / (double)B;
    return FB_OK;
}

// ---- UniFrac pairwise loss ----

#define UNIFRAC_MIN_SQDIST 1e-8  // the max(·, 1e-8) under the square root
#define UNIFRAC_PRED_SCALE 10.0  // pred = tanh(d / 10)

int64_t unifrac_pair_count(int N, int block) {
    if (N <= 0 || block < 0 || (block > 0 && N % block != 0)) return -1;
    int64_t k = block ? block : N;
    return (int64_t)(N / k) * (k * (k - 1) / 2);
}

// Σ_d (a_d - b_d)² in double, in 8 independent lanes added in a fixed tree: vectorisable without
// -ffast-math, the same bits for (a, b) and (b, a), and independent of the thread count.
static double sqdist(const float *a, const float *b, int D) {
    double lane[8] = {0};
    int d = 0;
    for (; d + 8 <= D; d += 8)
        for (int l = 0; l < 8; l++) {
            double t = (double)a[d + l] - (double)b[d + l];
            lane[l] += t * t;
        }
    for (; d < D; d++) {
        double t = (double)a[d] - (double)b[d];
        lane[d & 7] += t * t;
    }
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// Row i against its partners j in [j0, j1), j != i. Returns Σ_{j > i} (pred_ij - T_ij)² (in j order);
// when acc (D) is given, adds Σ_j coef · r_ij (1 - pred_ij²) / d_ij · (e_i - e_j) to it, with
// coef = 2 grad_scale / (10 P). The pair (i, j) reads T at (min, max): the loss counts i < j only.
static double unifrac_row(double *acc, int i, const float *e, const float *T, int N, int D, int j0, int j1,
                          double coef) {
    const float *ei = e + (size_t)i * D;
    double loss = 0;
    for (int j = acc ? j0 : i + 1; j < j1; j++) {
        if (j == i) continue;
        const float *ej = e + (size_t)j * D;
        double s = sqdist(ei, ej, D);
        // torch.clamp_min passes the gradient where s >= min: below it the pair is constant.
        int clamped = s < UNIFRAC_MIN_SQDIST;
        double d = sqrt(clamped ? UNIFRAC_MIN_SQDIST : s);
        double pred = tanh(d / UNIFRAC_PRED_SCALE);
        double r = pred - (double)(i < j ? T[(size_t)i * N + j] : T[(size_t)j * N + i]);
        if (j > i) loss += r * r;
        if (acc && !clamped) {
            double c = coef * r * (1.0 - pred * pred) / d;
            for (int k = 0; k < D; k++) acc[k] += c * ((double)ei[k] - (double)ej[k]);
        }
    }
    return loss;
}

fb_status unifrac_pairwise_loss(double *loss_part, float *de_rows, const float *e, const float *target,
                                int N, int D, int block, int r0, int r1, float grad_scale) {
    static const char *name = "unifrac_pairwise_loss";
    FB_REQUIRE(N > 0 && D > 0, FB_ERR_SHAPE, "%s: sizes N=%d D=%d must both be > 0", name, N, D);
    FB_REQUIRE(block >= 0 && (block == 0 || N % block == 0), FB_ERR_SHAPE,
               "%s: pair block %d must be 0 (all pairs) or a positive divisor of N=%d", name, block, N);
    FB_REQUIRE(0 <= r0 && r0 <= r1 && r1 <= N, FB_ERR_SHAPE,
               "%s: row range [%d, %d) is not inside [0, N=%d)", name, r0, r1, N);
    FB_REQUIRE(e && target, FB_ERR_SHAPE, "%s: missing embeddings or target", name);
    // Every row and every counted target entry, whatever the row range: all ranks fail alike.
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) {
            float v = e[(size_t)i * D + d];
            FB_REQUIRE(isfinite(v), FB_ERR_NONFINITE,
                       "%s: embedding row %d has a non-finite value (e[%d][%d] = %g)", name, i, i, d, (double)v);
        }
    int k = block ? block : N;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < (i / k + 1) * k; j++) {
            float v = target[(size_t)i * N + j];
            FB_REQUIRE(isfinite(v), FB_ERR_NONFINITE, "%s: target T[%d][%d] = %g is not finite", name, i, j, (double)v);
        }
    int64_t P = unifrac_pair_count(N, block);
    if (P == 0 || r0 == r1) {  // N = 1, block = 1, or no rows: nothing counted here
        if (loss_part) *loss_part = 0.0;
        return FB_OK;
    }
    int rows = r1 - r0;
    double *rowloss = malloc((size_t)rows * sizeof(double));
    double *acc = de_rows ? malloc((size_t)omp_get_max_threads() * D * sizeof(double)) : NULL;
    if (!rowloss || (de_rows && !acc)) {
        free(rowloss);
        free(acc);
        return fb_fail(FB_ERR_ALLOC, "%s: no memory for %d row sums", name, rows);
    }
    double coef = 2.0 * (double)grad_scale / (UNIFRAC_PRED_SCALE * (double)P);
    fb_flops_add(unifrac_pairwise_flops(N, D, block, r0, r1, de_rows != NULL));
    // One row per iteration (dynamic: with the loss alone, row i has N - 1 - i partners).
    #pragma omp parallel for schedule(dynamic, 4) if ((size_t)rows * k * D > FB_OMP_MIN_WORK)
    for (int i = r0; i < r1; i++) {
        int j0 = i / k * k;
        double *a = de_rows ? acc + (size_t)omp_get_thread_num() * D : NULL;
        if (a) memset(a, 0, (size_t)D * sizeof(double));
        rowloss[i - r0] = unifrac_row(a, i, e, target, N, D, j0, j0 + k, coef);
        if (a) {
            float *g = de_rows + (size_t)(i - r0) * D;
            for (int d = 0; d < D; d++) g[d] += (float)a[d];
        }
    }
    double s = 0;
    for (int r = 0; r < rows; r++) s += rowloss[r];
    free(rowloss);
    free(acc);
    if (loss_part) *loss_part = s / (double)P;
    return FB_OK;
}

// ---- FLOP counts ----

double mse_loss_flops(size_t n, int with_grad) { return (3.0 + (with_grad ? 2.0 : 0.0)) * (double)n; }

double huber_loss_flops(size_t n, int with_grad) { return (4.0 + (with_grad ? 3.0 : 0.0)) * (double)n; }

double cross_entropy_loss_flops(int B, int C, int with_grad) {
    return 4.0 * B * C + 3.0 * B + (with_grad ? 5.0 * B * C : 0.0);
}

double unifrac_pairwise_flops(int N, int D, int block, int r0, int r1, int with_grad) {
    if (unifrac_pair_count(N, block) < 0 || r0 < 0 || r1 > N || r0 >= r1) return 0.0;
    int k = block ? block : N;
    double pairs = 0;
    for (int i = r0; i < r1; i++) pairs += with_grad ? k - 1 : (i / k + 1) * k - 1 - i;
    return pairs * (with_grad ? 6.0 * D + 14.0 : 3.0 * D + 8.0);
}
