// timeseries (000, "Celestial Enhanced PGAT", shaaniitk/Time-Series-Library): a miniature of the
// source forecaster with the celestial fusion as the benchmarked method.
//
// Shapes (B samples, S = seq_len input days, P = pred_len forecast days, Fe = features, D width,
// Dc = D/4 calendar width, K = 13 celestial bodies, N = B·S rows):
//
//   e    = dropout(Linear(Fe → D)(series) + PE)                      (N, D)  series embedding
//   cal  = dropout(GELU(LN(Linear(3D/4 → Dc)([E_dow; E_month; E_quarter; Lin_k(s_k), k < 7]))))
//                                                                    (N, Dc) calendar encoder
//   h_0  = calendar_fusion(e, cal)       fusion point 0: concat_proj "calendar",
//                                        GELU(LN(Linear(D + Dc → D)([e; cal]))) + dropout
//   h_l  = EncoderLayer_l(h_{l-1}), l = 1..layers                     (B, S, D)  the deep path
//   C    = Linear(3 → D)(tokens) + nodes                             (B, K, D)  celestial tokens
//   vector methods:   fused = LN_c(MHA(q = h_L, k = v = C))          (N, D)     the shallow path
//                     z = method(a = h_L, b = fused), position by position over the N rows
//   sequence methods: z = method(a = h_L (B, S, D), b = C (B, K, D)) (B, S, D)
//                     (the method replaces the celestial attention)
//   out  = Linear(S·D → P)(z flattened per sample)                   (B, P)     forecast
//   loss = MSE(out, y), one term "mse"
//
// Sources: ../shared/SOURCE-SYSTEMS.md §000 (calendar encoder, calendar fusion, celestial attention
// with LN_c, Xavier/zero init of the fusion) and seeds/000 (§1 the deep encoder path vs the shallow
// celestial path, §4.1 the calendar fusion as a second fusion point). The fusion method is the
// model's parameter (model_config.method); the default form of the source is gated_add.
//
// Choices where the sources are silent or the miniature departs from them (each deliberate):
//   - Sizes: D = 64 (production 416; small so that a B = 32 step takes ~20 ms on one core; at
//     D = 64 the source's fusion_dim = min(D, 64) equals D, so the celestial attention runs at
//     width D with no extra projections — for D > 64 the source would attend in 64 dims), H = 4,
//     layers = 2 (the document's deep path has 3; 2 keeps the default step fast, c->layers sets
//     it), F = 4D, seq_len 48, pred_len 12, features 1 (univariate). D must be a multiple of 16
//     (calendar widths D/8, D/16) and of H.
//   - Series embedding: Linear(Fe → D) per position (the document's "embedding (Linear)";
//     Time-Series-Library's DataEmbedding uses a circular Conv1d token embedding instead) plus the
//     library's fixed sinusoidal positional encoding (not learned), then dropout, as its
//     DataEmbedding does.
//   - Calendar encoder (SOURCE-SYSTEMS): Embedding(7, D/8) day of week, Embedding(12, D/8) month,
//     Embedding(4, D/16) quarter, and the seven scalar features each through its own
//     Linear(1, D/16); concatenated (3D/4), Linear(3D/4 → Dc = D/4), LayerNorm, GELU, dropout.
//     (The source sizes the embeddings from the encoder's own d; here d = D with the output
//     projected to the fusion's cal_dim = D/4.) The seven scalars: day of month (d−1)/30, day of
//     year doy/365, week of year (doy/7)/52, weekend, month start, month end, holiday.
//     Embeddings N(0, 1) (nn.Embedding), Linears nn.Linear's default, LayerNorm 1/0.
//   - Celestial tokens: 13 bodies (Sun, Moon, Mercury, Venus, Mars, Jupiter, Saturn, Uranus,
//     Neptune, Pluto, North node, South node, Chiron), each (sin φ, cos φ, cos(φ − φ_sun)) at the
//     forecast origin (the first target day); projected by one Linear(3 → D) and given a learned
//     per-body node embedding `celestial.nodes` (13, D), N(0, 0.02²) (the document's "celestial_nodes
//     (initialized)"). The celestial attention is nn.MultiheadAttention(D, H, dropout) with torch's
//     initialisation, then LN_c. Methods that normalise b themselves (gated_add's norm_b is the
//     source's LN_c) then see an already normalised stream: harmless, and it keeps every vector
//     method on the same balanced input (§3 of the document).
//   - Head: a flatten head Linear(S·D → P) (Time-Series-Library's FlattenHead) rather than the last
//     position only, so every position's fusion reaches the loss.
//   - Pooling methods (out_positions < S) are refused: the flatten head and the forecaster keep one
//     row per time step. fits() decides by creating the method on the scenario's default shapes
//     (vector: a, b (N, D); sequence: a (B, S, D), b (B, 13, D)) on a scratch layout.
//   - The method's own hidden widths and layer counts are its defaults (c->F and c->layers size the
//     model's transformer layers); its heads are c->H; its dropout c->dropout.
//   - Dropout sites: fusion point 0 (calendar) owns rng sites [0, 256), point 1 (the method)
//     [256, 512); the model's own sites start at 512 (embedding, calendar encoder, celestial
//     attention, then 4 per encoder layer). Every key handed to a kernel or a fusion point carries
//     row0 = the batch's first global row in that kernel's leading dimension: first for the
//     per-sample kernels (encoder layers, the celestial attention, a sequence method), first · S for
//     those over the N = B·S position rows (the embedding and calendar-encoder dropouts, the
//     calendar fusion, a vector method). So every mask and route sample follows the global row, and a
//     rank holding rows [r0, r1) gets the one-process run's draws there.
//   - A batch smaller than c->B runs the fusion points with their config's B lowered to the batch's
//     rows (their buffers are sized for c->B).
//
// Fusion points, registered with the model (model_fusion_points): point 0 "calendar_fusion", point 1
// "fusion".
//
// Module tags (kernels/layout.h, for output norms): calendar_proj (Linear), calendar_norm
// (LayerNorm), h0 (the calendar fusion), h1..hL (post-norm layers: norm2's output), celestial_x
// (attention), celestial_fused (LN_c), fused (the method), and inside the layers what
// encoder_layer_declare_acts tags. Not tagged, because the Linear's output is changed in place
// afterwards: embedding (+ PE, dropout) and celestial (+ node embeddings). The head's output is the
// caller's `out`, not an activation tensor.
//
// The synthetic generator (until the datasets issue): one deterministic daily series v(t), t = days
// since 2000-01-01 (Gregorian calendar), sample `index` is the window starting at day
// t0 = floor(u · 14610), u = fb_uniform({seed, 0, GEN_START}, index): inputs are days [t0, t0 + S),
// targets channel 0 on days [t0 + S, t0 + S + P). Channel 0:
//   v(t) = a_trend · 0.6 sin(2π t / 1461 + 0.3)                              slow trend (4-year cycle)
//        + a_weekly · W[dow]                                                  weekly profile
//        + a_yearly · (0.5 sin(2π doy / 365.25) + 0.25 cos(4π doy / 365.25))  yearly seasonality
//        + a_calendar · (0.8 month_end + 0.3 month_start − 1.0 holiday)       calendar effects
//        + a_celestial · (0.6 cos φ_moon + 0.4 sin φ_mars + 0.4 cos(φ_jup − φ_sat) + 0.3 sin φ_venus)
//        + a_interaction · ((1.2 weekend − 0.4) cos φ_moon + 0.8 (month_end or holiday) sin φ_venus)
//        + a_noise · n(t)
// with φ_k(t) = 2π (t / period_k + θ_k) and n(t) a standard normal (Box-Muller, in double, on the
// Philox uniforms 2t, 2t + 1 of {seed, 0, GEN_NOISE + channel}). Channels f ≥ 1 (covariates):
// a_trend · trend + a_yearly · yearly + a_noise · n_f(t). The target depends on the series' own
// history, on the calendar, on the celestial state, and on calendar × celestial interactions, so the
// fusion matters. The strengths a_* are fb_synth_ts_world fields (datasets/synth_timeseries.h;
// defaults 1, noise 0.3; model_config.ts_world, `--ts-world`).
// Record (floats): series (S, Fe) | calendar ids (S, 3: dow 0–6 Monday first, month 0–11,
// quarter 0–3) | calendar scalars (S, 7) | celestial tokens (13, 3). tests/refs/ref_scenario_timeseries.py
// holds a Python twin of the generator and a PyTorch twin of the model.
#include "model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/activations.h"
#include "../kernels/attention.h"
#include "../kernels/dropout.h"
#include "../kernels/encoder_layer.h"
#include "../kernels/layernorm.h"
#include "../kernels/linear.h"
#include "../kernels/loss.h"
#include "../kernels/rng.h"
#include "../datasets/synth_timeseries.h"

#define TS_BODIES FB_TS_BODIES
#define TS_CEL_FEAT 3
#define TS_CAL_IDS 3
#define TS_CAL_SCALARS 7
#define TS_MAX_LAYERS 16
#define TS_LN_EPS 1e-5f
#define TS_DEFAULT_D 64
#define TS_DEFAULT_H 4
#define TS_DEFAULT_LAYERS 2
#define TS_DEFAULT_SEQ 48
#define TS_DEFAULT_PRED 12
#define TS_DEFAULT_FEATURES 1

enum { TS_POINT_CALENDAR, TS_POINT_METHOD, TS_POINTS };
// The model's own dropout sites, after the fusion points' ranges.
enum {
    TS_SITE_EMBED = TS_POINTS * FUSION_RNG_SITES,
    TS_SITE_CALENDAR,
    TS_SITE_CELESTIAL,
    TS_SITE_LAYERS = TS_SITE_EMBED + 8,   // layer l: TS_SITE_LAYERS + ENC_LAYER_SITES * l
};


typedef struct {
    fusion cal_fusion, method;        // fusion points 0 and 1 (registered with the model)

    fb_synth_ts_world gen;             // datasets/synth_timeseries.h
    int S, P, Fe, D, H, L, F, Dc, Dm, Dq, Cin, sequence;
    int off_ids, off_scal, off_cel;   // record offsets
    float *pe;                        // (S, D) sinusoidal positional encoding

    // parameters (with gradients)
    linear_params emb, demb;                          // series_embedding (D, Fe)
    float *dow, *ddow, *month, *dmonth, *quarter, *dquarter;
    linear_params scal[TS_CAL_SCALARS], dscal[TS_CAL_SCALARS];   // (Dq, 1) each
    linear_params cproj, dcproj;                      // (Dc, Cin)
    layernorm_params cnorm, dcnorm;
    encoder_layer_config lc[TS_MAX_LAYERS];
    encoder_layer_params layer[TS_MAX_LAYERS], dlayer[TS_MAX_LAYERS];
    linear_params celproj, dcelproj;                  // (D, 3)
    float *nodes, *dnodes;                            // (K, D)
    mha_config mc;
    mha_params att, datt;                             // vector methods only
    layernorm_params celnorm, dcelnorm;               // vector methods only
    linear_params head, dhead;                        // (P, S·D)
    // Parameter-tensor indices where backward's stages begin (DDP buckets: model_grads_ready).
    int first_layer[TS_MAX_LAYERS], first_celestial, first_head;

    // activations (and gradients)
    float *xs;                 // (N, Fe) series values
    float *e, *de;             // (N, D) embedding after dropout
    float *ci, *dci;           // (N, Cin) calendar features concatenated
    float *cz, *dcz;           // (N, Dc) calendar projection
    float *cn, *dcn;           // (N, Dc) its LayerNorm
    float *cmean, *crstd;      // (N)
    float *cal, *dcal;         // (N, Dc) calendar encoder output
    float *h[TS_MAX_LAYERS + 1], *dh[TS_MAX_LAYERS + 1];   // (N, D): h[0] calendar fusion, h[l] layer l
    encoder_layer_acts la[TS_MAX_LAYERS], dla[TS_MAX_LAYERS];
    float *ct;                 // (B·K, 3) celestial token features
    float *cc, *dcc;           // (B·K, D) projected tokens
    mha_acts ma, dma;
    float *cx, *dcx;           // (N, D) celestial attention output
    float *cf, *dcf;           // (N, D) LN_c of it
    float *fmean, *frstd;      // (N)
    float *z, *dz;             // (N, D) fusion output
} ts_self;

static void ts_sample(const model *m, uint64_t index, float *x, float *y) {
    const ts_self *s = m->self;
    const uint64_t seed = m->c.seed;
    const int64_t t0 = fb_synth_ts_start(seed, index);
    const int S = s->S, Fe = s->Fe;
    for (int i = 0; i < S; i++) {
        const int64_t t = t0 + i;
        for (int f = 0; f < Fe; f++) x[i * Fe + f] = (float)fb_synth_ts_value(&s->gen, seed, f, t);
        const fb_ts_date c = fb_synth_ts_calendar(t);
        float *ids = x + s->off_ids + i * TS_CAL_IDS, *sc = x + s->off_scal + i * TS_CAL_SCALARS;
        ids[0] = (float)c.dow;
        ids[1] = (float)c.month;
        ids[2] = (float)c.quarter;
        sc[0] = (float)((c.dom - 1) / 30.0);
        sc[1] = (float)(c.doy / 365.0);
        sc[2] = (float)((c.doy / 7) / 52.0);
        sc[3] = (float)c.weekend;
        sc[4] = (float)c.month_start;
        sc[5] = (float)c.month_end;
        sc[6] = (float)c.holiday;
    }
    const int64_t origin = t0 + S;
    const double sun = fb_synth_ts_phase(0, origin);
    for (int k = 0; k < TS_BODIES; k++) {
        const double ph = fb_synth_ts_phase(k, origin);
        float *tok = x + s->off_cel + k * TS_CEL_FEAT;
        tok[0] = (float)sin(ph);
        tok[1] = (float)cos(ph);
        tok[2] = (float)cos(ph - sun);
    }
    for (int j = 0; j < s->P; j++) y[j] = (float)fb_synth_ts_value(&s->gen, seed, 0, origin + j);
}

// ---------------------------------------------------------------- fits

static int ts_fits(const fusion_method *fm, char *why, size_t size) {
    const int S = TS_DEFAULT_SEQ, D = TS_DEFAULT_D;
    fusion_config c = fm->kind == FUSION_VECTOR ? fusion_default_config(S, 1, 1, D, D)
                                                : fusion_default_config(1, S, TS_BODIES, D, D);
    c.H = TS_DEFAULT_H;
    fusion f;
    fb_layout P, A;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    const fb_status st = fusion_create(&f, fm, &c, &P, &A);
    int ok = 0;
    if (st != FB_OK)
        snprintf(why, size, "it does not take the scenario's streams: %s", fb_last_error());
    else if (fm->b_onehot)
        snprintf(why, size, "its b is one-hot category indicators; the celestial stream is continuous features");
    else if (fm->kind == FUSION_SEQUENCE && f.out_positions != S)
        snprintf(why, size, "it pools the %d positions into %d, the forecaster needs one row per time step", S,
                 f.out_positions);
    else
        ok = 1;
    if (st == FB_OK) fusion_destroy(&f);
    fb_layout_free(&P);
    fb_layout_free(&A);
    return ok ? 0 : -1;
}

// ---------------------------------------------------------------- create

static void ts_destroy(model *m) {
    ts_self *s = m->self;
    if (!s) return;
    fusion_destroy(&s->cal_fusion);
    fusion_destroy(&s->method);
    free(s->pe);
    free(s);
    m->self = NULL;
}

#define TS_ADD(L, name, ndim, dims, init, arg, p0, p1) \
    do { if (fb_layout_add((L), "timeseries", (name), (ndim), (dims), (init), (arg), (p0), (p1)) < 0) return FB_ERR_SHAPE; } while (0)
// Tags the tensor TS_ADD declared last as a module's output (module tags, see the top of the file).
#define TS_TAG_LAST(L, module) fb_layout_tag_module((L), (L)->count - 1, (module), 0)

static fb_status ts_create(model *m, fb_layout *P, fb_layout *A) {
    model_config *c = &m->c;
    if (!c->D) c->D = TS_DEFAULT_D;
    if (!c->H) c->H = TS_DEFAULT_H;
    if (!c->layers) c->layers = TS_DEFAULT_LAYERS;
    if (!c->F) c->F = 4 * c->D;
    if (!c->seq_len) c->seq_len = TS_DEFAULT_SEQ;
    if (!c->pred_len) c->pred_len = TS_DEFAULT_PRED;
    if (!c->features) c->features = TS_DEFAULT_FEATURES;
    FB_REQUIRE(c->B > 0 && c->seq_len > 0 && c->pred_len > 0 && c->features > 0 && c->D > 0 && c->H > 0 && c->F > 0,
               FB_ERR_SHAPE, "timeseries: sizes B=%d seq_len=%d pred_len=%d features=%d D=%d H=%d F=%d must be > 0",
               c->B, c->seq_len, c->pred_len, c->features, c->D, c->H, c->F);
    FB_REQUIRE(c->D % 16 == 0, FB_ERR_CONFIG, "timeseries: D=%d must be a multiple of 16 (calendar widths D/8, D/16)", c->D);
    FB_REQUIRE(c->D % c->H == 0, FB_ERR_CONFIG, "timeseries: H=%d heads do not divide D=%d", c->H, c->D);
    FB_REQUIRE(c->layers >= 1 && c->layers <= TS_MAX_LAYERS, FB_ERR_CONFIG, "timeseries: layers=%d outside 1..%d",
               c->layers, TS_MAX_LAYERS);
    FB_REQUIRE(c->dropout >= 0.0f && c->dropout < 1.0f, FB_ERR_CONFIG, "timeseries: dropout %g outside [0, 1)",
               (double)c->dropout);
    ts_self *s = calloc(1, sizeof *s);
    FB_REQUIRE(s, FB_ERR_ALLOC, "timeseries: %zu bytes of state", sizeof *s);
    m->self = s;
    s->gen = c->ts_world ? *c->ts_world : fb_synth_ts_defaults();
    const int B = c->B, S = c->seq_len, D = c->D;
    s->S = S; s->P = c->pred_len; s->Fe = c->features; s->D = D; s->H = c->H; s->L = c->layers; s->F = c->F;
    s->Dc = D / 4; s->Dm = D / 8; s->Dq = D / 16;
    s->Cin = 2 * s->Dm + s->Dq + TS_CAL_SCALARS * s->Dq;
    s->sequence = m->method->kind == FUSION_SEQUENCE;
    s->off_ids = S * s->Fe;
    s->off_scal = s->off_ids + S * TS_CAL_IDS;
    s->off_cel = s->off_scal + S * TS_CAL_SCALARS;
    m->in_stride = s->off_cel + TS_BODIES * TS_CEL_FEAT;
    m->y_stride = s->P;
    m->out_dim = s->P;
    m->n_terms = 1;
    m->term_names[0] = "mse";
    const int N = B * S;

    s->pe = malloc((size_t)S * D * sizeof(float));
    FB_REQUIRE(s->pe, FB_ERR_ALLOC, "timeseries: positional encoding");
    for (int p = 0; p < S; p++)
        for (int i = 0; i < D; i += 2) {
            const double div = exp((double)i * -(log(10000.0) / D));
            s->pe[p * D + i] = (float)sin(p * div);
            if (i + 1 < D) s->pe[p * D + i + 1] = (float)cos(p * div);
        }

    // Parameters, in the order of the forward pass.
    if (linear_declare(P, "series_embedding", s->Fe, D, 1, &s->emb, &s->demb) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(P, "calendar.dow", "weight", 2, (int[]){7, s->Dm}, FB_INIT_NORMAL, 1.0f, &s->dow, &s->ddow) < 0 ||
        fb_layout_add(P, "calendar.month", "weight", 2, (int[]){12, s->Dm}, FB_INIT_NORMAL, 1.0f, &s->month, &s->dmonth) < 0 ||
        fb_layout_add(P, "calendar.quarter", "weight", 2, (int[]){4, s->Dq}, FB_INIT_NORMAL, 1.0f, &s->quarter, &s->dquarter) < 0)
        return FB_ERR_SHAPE;
    char name[FB_NAME_MAX];
    for (int k = 0; k < TS_CAL_SCALARS; k++) {
        snprintf(name, sizeof name, "calendar.scalar.%d", k);
        if (linear_declare(P, name, 1, s->Dq, 1, &s->scal[k], &s->dscal[k]) < 0) return FB_ERR_SHAPE;
    }
    if (linear_declare(P, "calendar.proj", s->Cin, s->Dc, 1, &s->cproj, &s->dcproj) < 0 ||
        layernorm_declare(P, "calendar.norm", s->Dc, &s->cnorm, &s->dcnorm) < 0)
        return FB_ERR_SHAPE;

    const fusion_method *cp = fusion_find("concat_proj");
    FB_REQUIRE(cp, FB_ERR_INTERNAL, "timeseries: the calendar fusion needs the concat_proj method");
    fusion_config fc = fusion_default_config(N, 1, 1, D, s->Dc);
    fc.prefix = "calendar_fusion";
    fc.variant = fusion_variant_index(cp, "calendar");
    fc.dropout = c->dropout;
    fc.rng = (fb_rng_key){.seed = c->seed, .step = 0, .site = TS_POINT_CALENDAR};
    FB_TRY(fusion_create(&s->cal_fusion, cp, &fc, P, A));

    for (int l = 0; l < s->L; l++) {
        s->lc[l] = (encoder_layer_config){.D = D, .H = c->H, .F = c->F, .activation = FB_ACT_GELU,
                                          .dropout = c->dropout, .norm_first = 0, .eps = TS_LN_EPS,
                                          .site = TS_SITE_LAYERS + ENC_LAYER_SITES * l};
        FB_TRY(encoder_layer_check_config(&s->lc[l]));
        snprintf(name, sizeof name, "encoder.layers.%d", l);
        s->first_layer[l] = P->count;
        if (encoder_layer_declare(P, name, &s->lc[l], &s->layer[l], &s->dlayer[l]) < 0) return FB_ERR_SHAPE;
    }
    s->first_celestial = P->count;   // celestial path, then the method: all final once both are done
    if (linear_declare(P, "celestial.proj", TS_CEL_FEAT, D, 1, &s->celproj, &s->dcelproj) < 0 ||
        fb_layout_add(P, "celestial", "nodes", 2, (int[]){TS_BODIES, D}, FB_INIT_NORMAL, 0.02f, &s->nodes, &s->dnodes) < 0)
        return FB_ERR_SHAPE;
    s->mc = (mha_config){.D = D, .Ek = D, .Ev = D, .H = c->H, .dropout = c->dropout};
    if (!s->sequence) {
        FB_TRY(mha_check_config(&s->mc));
        if (mha_declare(P, "celestial.attn", &s->mc, &s->att, &s->datt) < 0 ||
            (!c->celestial_raw && layernorm_declare(P, "celestial.norm", D, &s->celnorm, &s->dcelnorm) < 0))
            return FB_ERR_SHAPE;
    }
    fusion_config mcfg = s->sequence ? fusion_default_config(B, S, TS_BODIES, D, D) : fusion_default_config(N, 1, 1, D, D);
    mcfg.prefix = "fusion";
    mcfg.H = c->H;
    model_fusion_options(c, &mcfg);
    mcfg.rng = (fb_rng_key){.seed = c->seed, .step = 0, .site = TS_POINT_METHOD};
    FB_TRY(fusion_create(&s->method, m->method, &mcfg, P, A));
    FB_REQUIRE(s->method.out_positions == (s->sequence ? S : 1), FB_ERR_CONFIG,
               "timeseries: %s gives %d positions per sample; the forecaster needs %d", m->method->name,
               s->method.out_positions, s->sequence ? S : 1);
    s->first_head = P->count;
    if (linear_declare(P, "head", S * D, s->P, 1, &s->head, &s->dhead) < 0) return FB_ERR_SHAPE;

    // In TS_POINT_* order.
    FB_TRY(model_add_fusion_point(m, &s->cal_fusion, "calendar_fusion"));
    FB_TRY(model_add_fusion_point(m, &s->method, "fusion"));

    // Activations for c->B samples.
    const int nd[] = {N, D}, nc[] = {N, s->Dc}, n1[] = {N};
    TS_ADD(A, "series", 2, ((int[]){N, s->Fe}), FB_INIT_ZERO, 0, &s->xs, NULL);
    TS_ADD(A, "embedding", 2, nd, FB_INIT_ZERO, 0, &s->e, &s->de);
    TS_ADD(A, "calendar_in", 2, ((int[]){N, s->Cin}), FB_INIT_ZERO, 0, &s->ci, &s->dci);
    TS_ADD(A, "calendar_proj", 2, nc, FB_INIT_ZERO, 0, &s->cz, &s->dcz);
    TS_TAG_LAST(A, FB_MODULE_LINEAR);
    TS_ADD(A, "calendar_norm", 2, nc, FB_INIT_ZERO, 0, &s->cn, &s->dcn);
    TS_TAG_LAST(A, FB_MODULE_LAYERNORM);
    TS_ADD(A, "calendar_mean", 1, n1, FB_INIT_ZERO, 0, &s->cmean, NULL);
    TS_ADD(A, "calendar_rstd", 1, n1, FB_INIT_ZERO, 0, &s->crstd, NULL);
    TS_ADD(A, "calendar", 2, nc, FB_INIT_ZERO, 0, &s->cal, &s->dcal);
    for (int l = 0; l <= s->L; l++) {
        snprintf(name, sizeof name, "h%d", l);
        TS_ADD(A, name, 2, nd, FB_INIT_ZERO, 0, &s->h[l], &s->dh[l]);
        TS_TAG_LAST(A, l == 0 ? FB_MODULE_FUSION : encoder_layer_output_module(&s->lc[l - 1]));
    }
    for (int l = 0; l < s->L; l++) {
        snprintf(name, sizeof name, "timeseries.layer%d", l);
        if (encoder_layer_declare_acts(A, name, &s->lc[l], B, S, &s->la[l], &s->dla[l]) < 0) return FB_ERR_SHAPE;
    }
    TS_ADD(A, "celestial_tokens", 2, ((int[]){B * TS_BODIES, TS_CEL_FEAT}), FB_INIT_ZERO, 0, &s->ct, NULL);
    TS_ADD(A, "celestial", 2, ((int[]){B * TS_BODIES, D}), FB_INIT_ZERO, 0, &s->cc, &s->dcc);
    if (!s->sequence) {
        if (mha_declare_acts(A, "timeseries.celestial_attn", &s->mc, B, S, TS_BODIES, &s->ma, &s->dma) < 0)
            return FB_ERR_SHAPE;
        TS_ADD(A, "celestial_x", 2, nd, FB_INIT_ZERO, 0, &s->cx, &s->dcx);
        TS_TAG_LAST(A, FB_MODULE_ATTENTION);
        TS_ADD(A, "celestial_fused", 2, nd, FB_INIT_ZERO, 0, &s->cf, &s->dcf);
        TS_TAG_LAST(A, c->celestial_raw ? FB_MODULE_NONE : FB_MODULE_LAYERNORM);
        TS_ADD(A, "celestial_mean", 1, n1, FB_INIT_ZERO, 0, &s->fmean, NULL);
        TS_ADD(A, "celestial_rstd", 1, n1, FB_INIT_ZERO, 0, &s->frstd, NULL);
    }
    TS_ADD(A, "fused", 2, nd, FB_INIT_ZERO, 0, &s->z, &s->dz);
    TS_TAG_LAST(A, FB_MODULE_FUSION);
    return FB_OK;
}

// ---------------------------------------------------------------- forward / backward

// The key of one of the model's own sites, row0 in samples (the dropouts over the position rows
// take a sample's (S, ·) block as one row, so their masks are the flat (N, ·) ones at first · S).
static fb_rng_key ts_key(const model *m, const model_batch *b, uint32_t site) {
    return (fb_rng_key){.seed = m->c.seed, .step = b->step, .site = site, .row0 = b->first};
}

// Points the fusion instances at this batch: rows, their first global row (in samples for a
// sequence method, in position rows for one over the B·S rows), training flag, step.
static void ts_bind_points(const model *m, ts_self *s, const model_batch *b) {
    s->cal_fusion.c.B = b->B * s->S;
    s->cal_fusion.c.rng.row0 = b->first * s->S;
    s->method.c.B = s->sequence ? b->B : b->B * s->S;
    s->method.c.rng.row0 = s->sequence ? b->first : b->first * s->S;
    for (int i = 0; i < m->n_points; i++) {
        m->points[i]->c.training = b->training;
        m->points[i]->c.rng.step = b->step;
    }
}

static fb_status ts_check_batch(const model *m, const model_batch *b) {
    FB_REQUIRE(b->B > 0 && b->B <= m->c.B, FB_ERR_SHAPE, "timeseries: batch of %d rows (1..%d allowed)", b->B, m->c.B);
    FB_REQUIRE(b->x, FB_ERR_SHAPE, "timeseries: no inputs");
    return FB_OK;
}

static fb_status ts_forward(model *m, const model_batch *b, float *out) {
    FB_TRY(ts_check_batch(m, b));
    ts_self *s = m->self;
    const int Bn = b->B, S = s->S, D = s->D, Fe = s->Fe, Dm = s->Dm, Dq = s->Dq, Cin = s->Cin, Dc = s->Dc;
    const int N = Bn * S, stride = m->in_stride;
    const float p = m->c.dropout;
    const float *x = b->x;
    ts_bind_points(m, s, b);

    // Calendar ids are checked before any work (a bad record names its row).
    for (int r = 0; r < N; r++) {
        const float *ids = x + (size_t)(r / S) * stride + s->off_ids + (r % S) * TS_CAL_IDS;
        FB_REQUIRE(ids[0] >= 0 && ids[0] < 7 && ids[1] >= 0 && ids[1] < 12 && ids[2] >= 0 && ids[2] < 4,
                   FB_ERR_SHAPE, "timeseries: calendar ids (%g, %g, %g) out of range in sample %d, day %d",
                   (double)ids[0], (double)ids[1], (double)ids[2], r / S, r % S);
    }

    // Series embedding: gather, Linear, + PE, dropout (global row index).
    #pragma omp parallel for schedule(static) if ((size_t)N * (Fe + Cin) > FB_OMP_MIN_WORK)
    for (int r = 0; r < N; r++) {
        const float *rec = x + (size_t)(r / S) * stride, *day = rec + (r % S) * Fe;
        for (int f = 0; f < Fe; f++) s->xs[(size_t)r * Fe + f] = day[f];
        // Calendar features: [dow (Dm) | month (Dm) | quarter (Dq) | scalar k (Dq) for k < 7]
        const float *ids = rec + s->off_ids + (r % S) * TS_CAL_IDS;
        const float *sc = rec + s->off_scal + (r % S) * TS_CAL_SCALARS;
        float *ci = s->ci + (size_t)r * Cin;
        memcpy(ci, s->dow + (int)ids[0] * Dm, Dm * sizeof(float));
        memcpy(ci + Dm, s->month + (int)ids[1] * Dm, Dm * sizeof(float));
        memcpy(ci + 2 * Dm, s->quarter + (int)ids[2] * Dq, Dq * sizeof(float));
        for (int k = 0; k < TS_CAL_SCALARS; k++) {
            float *o = ci + 2 * Dm + Dq + k * Dq;
            for (int j = 0; j < Dq; j++) o[j] = s->scal[k].weight[j] * sc[k] + s->scal[k].bias[j];
        }
    }
    FB_TRY(linear_forward(s->e, s->xs, &s->emb, N, Fe, D));
    #pragma omp parallel for schedule(static) if ((size_t)N * D > FB_OMP_MIN_WORK)
    for (int r = 0; r < N; r++) {
        float *e = s->e + (size_t)r * D;
        const float *pe = s->pe + (size_t)(r % S) * D;
        for (int d = 0; d < D; d++) e[d] += pe[d];
    }
    const fb_rng_key kemb = ts_key(m, b, TS_SITE_EMBED), kcal = ts_key(m, b, TS_SITE_CALENDAR);
    const fb_rng_key kcel = ts_key(m, b, TS_SITE_CELESTIAL), klay = ts_key(m, b, 0);
    FB_TRY(dropout_rows_forward(s->e, s->e, (size_t)Bn, (size_t)S * D, p, &kemb, b->training));

    // Calendar encoder.
    FB_TRY(linear_forward(s->cz, s->ci, &s->cproj, N, Cin, Dc));
    FB_TRY(layernorm_forward(s->cn, s->cmean, s->crstd, s->cz, &s->cnorm, N, Dc, TS_LN_EPS));
    FB_TRY(activation_forward(FB_ACT_GELU, s->cal, s->cn, (size_t)N * Dc));
    FB_TRY(dropout_rows_forward(s->cal, s->cal, (size_t)Bn, (size_t)S * Dc, p, &kcal, b->training));

    // Fusion point 0 and the deep path.
    FB_TRY(fusion_forward(&s->cal_fusion, s->h[0], s->e, s->cal));
    for (int l = 0; l < s->L; l++)
        FB_TRY(encoder_layer_forward(s->h[l + 1], &s->la[l], s->h[l], NULL, &s->layer[l], &s->lc[l], Bn, S,
                                     b->training, &klay));

    // Celestial tokens.
    for (int i = 0; i < Bn; i++)
        memcpy(s->ct + (size_t)i * TS_BODIES * TS_CEL_FEAT, x + (size_t)i * stride + s->off_cel,
               TS_BODIES * TS_CEL_FEAT * sizeof(float));
    FB_TRY(linear_forward(s->cc, s->ct, &s->celproj, Bn * TS_BODIES, TS_CEL_FEAT, D));
    for (int i = 0; i < Bn * TS_BODIES; i++) {
        float *cc = s->cc + (size_t)i * D;
        const float *nd = s->nodes + (size_t)(i % TS_BODIES) * D;
        for (int d = 0; d < D; d++) cc[d] += nd[d];
    }

    // Fusion point 1: the method.
    const float *hL = s->h[s->L];
    if (s->sequence) {
        FB_TRY(fusion_forward(&s->method, s->z, hL, s->cc));
    } else {
        FB_TRY(mha_forward(s->cx, NULL, &s->ma, hL, s->cc, s->cc, NULL, &s->att, &s->mc, Bn, S, TS_BODIES, D, D,
                           b->training, &kcel));
        // 000's analysis: without LN_c the shallow path's output is far smaller than the deep one's.
        if (m->c.celestial_raw) memcpy(s->cf, s->cx, (size_t)N * D * sizeof(float));
        else FB_TRY(layernorm_forward(s->cf, s->fmean, s->frstd, s->cx, &s->celnorm, N, D, TS_LN_EPS));
        FB_TRY(fusion_forward(&s->method, s->z, hL, s->cf));
    }
    return linear_forward(out, s->z, &s->head, Bn, S * D, s->P);
}

static fb_status ts_backward(model *m, const model_batch *b, const float *dout) {
    FB_TRY(ts_check_batch(m, b));
    FB_REQUIRE(dout, FB_ERR_SHAPE, "timeseries: no output gradient");
    ts_self *s = m->self;
    const int Bn = b->B, S = s->S, D = s->D, Fe = s->Fe, Dm = s->Dm, Dq = s->Dq, Cin = s->Cin, Dc = s->Dc;
    const int N = Bn * S, L = s->L, stride = m->in_stride;
    const float p = m->c.dropout;
    const size_t nd = (size_t)N * D, nc = (size_t)N * Dc;
    ts_bind_points(m, s, b);
    const fb_rng_key kemb = ts_key(m, b, TS_SITE_EMBED), kcal = ts_key(m, b, TS_SITE_CALENDAR);
    const fb_rng_key kcel = ts_key(m, b, TS_SITE_CELESTIAL), klay = ts_key(m, b, 0);

    // Head and fusion point 1.
    memset(s->dz, 0, nd * sizeof(float));
    FB_TRY(linear_backward(s->dz, &s->dhead, dout, s->z, &s->head, Bn, S * D, s->P));
    model_grads_ready(m, s->first_head);
    memset(s->dh[L], 0, nd * sizeof(float));
    memset(s->dcc, 0, (size_t)Bn * TS_BODIES * D * sizeof(float));
    const float *hL = s->h[L];
    if (s->sequence) {
        FB_TRY(fusion_backward(&s->method, s->dh[L], s->dcc, s->dz, hL, s->cc));
    } else {
        memset(s->dcf, 0, nd * sizeof(float));
        FB_TRY(fusion_backward(&s->method, s->dh[L], s->dcf, s->dz, hL, s->cf));
        if (m->c.celestial_raw) {
            memcpy(s->dcx, s->dcf, nd * sizeof(float));
        } else {
            memset(s->dcx, 0, nd * sizeof(float));
            FB_TRY(layernorm_backward(s->dcx, &s->dcelnorm, s->dcf, s->cx, s->fmean, s->frstd, &s->celnorm, N, D));
        }
        FB_TRY(mha_backward(s->dh[L], s->dcc, s->dcc, &s->datt, &s->dma, s->dcx, hL, s->cc, s->cc, &s->ma, &s->att,
                            &s->mc, Bn, S, TS_BODIES, D, D, b->training, &kcel));
    }
    // Celestial tokens: node embeddings (summed over samples in order) and the projection.
    #pragma omp parallel for schedule(static) if ((size_t)Bn * TS_BODIES * D > FB_OMP_MIN_WORK)
    for (int k = 0; k < TS_BODIES; k++)
        for (int i = 0; i < Bn; i++) {
            const float *g = s->dcc + ((size_t)i * TS_BODIES + k) * D;
            float *dn = s->dnodes + (size_t)k * D;
            for (int d = 0; d < D; d++) dn[d] += g[d];
        }
    FB_TRY(linear_backward(NULL, &s->dcelproj, s->dcc, s->ct, &s->celproj, Bn * TS_BODIES, TS_CEL_FEAT, D));
    model_grads_ready(m, s->first_celestial);

    // Deep path.
    for (int l = L - 1; l >= 0; l--) {
        memset(s->dh[l], 0, nd * sizeof(float));
        FB_TRY(encoder_layer_backward(s->dh[l], &s->dlayer[l], &s->dla[l], s->dh[l + 1], s->h[l], &s->la[l],
                                      &s->layer[l], &s->lc[l], Bn, S, b->training, &klay));
        model_grads_ready(m, s->first_layer[l]);
    }

    // Fusion point 0.
    memset(s->de, 0, nd * sizeof(float));
    memset(s->dcal, 0, nc * sizeof(float));
    FB_TRY(fusion_backward(&s->cal_fusion, s->de, s->dcal, s->dh[0], s->e, s->cal));

    // Calendar encoder: dropout (its own adjoint, in place), GELU, LayerNorm, projection.
    FB_TRY(dropout_rows_forward(s->dcal, s->dcal, (size_t)Bn, (size_t)S * Dc, p, &kcal, b->training));
    memset(s->dcn, 0, nc * sizeof(float));
    FB_TRY(activation_backward(FB_ACT_GELU, s->dcn, s->dcal, s->cn, NULL, nc));
    memset(s->dcz, 0, nc * sizeof(float));
    FB_TRY(layernorm_backward(s->dcz, &s->dcnorm, s->dcn, s->cz, s->cmean, s->crstd, &s->cnorm, N, Dc));
    memset(s->dci, 0, (size_t)N * Cin * sizeof(float));
    FB_TRY(linear_backward(s->dci, &s->dcproj, s->dcz, s->ci, &s->cproj, N, Cin, Dc));
    // Embedding tables and scalar Linears: rows in order (one pass; a few floats per row).
    for (int r = 0; r < N; r++) {
        const float *rec = b->x + (size_t)(r / S) * stride;
        const float *ids = rec + s->off_ids + (r % S) * TS_CAL_IDS;
        const float *sc = rec + s->off_scal + (r % S) * TS_CAL_SCALARS;
        const float *g = s->dci + (size_t)r * Cin;
        float *dw = s->ddow + (int)ids[0] * Dm, *dm = s->dmonth + (int)ids[1] * Dm, *dq = s->dquarter + (int)ids[2] * Dq;
        for (int j = 0; j < Dm; j++) dw[j] += g[j];
        for (int j = 0; j < Dm; j++) dm[j] += g[Dm + j];
        for (int j = 0; j < Dq; j++) dq[j] += g[2 * Dm + j];
        for (int k = 0; k < TS_CAL_SCALARS; k++) {
            const float *gk = g + 2 * Dm + Dq + k * Dq;
            for (int j = 0; j < Dq; j++) {
                s->dscal[k].weight[j] += gk[j] * sc[k];
                s->dscal[k].bias[j] += gk[j];
            }
        }
    }
    // Series embedding: dropout, then the Linear (the PE is constant).
    FB_TRY(dropout_rows_forward(s->de, s->de, (size_t)Bn, (size_t)S * D, p, &kemb, b->training));
    return linear_backward(NULL, &s->demb, s->de, s->xs, &s->emb, N, Fe, D);
}

// ---------------------------------------------------------------- loss

// MSE over the N rows held, split by rows: row i's term is mse(row i) / N, computed by the kernel
// on that row alone, so a row's term and gradient are the same bits whatever range it is in.
static fb_status ts_loss(const model *m, const float *out, const float *y, int N, int r0, int r1, int pair_block,
                         double *terms, float *dout_rows) {
    (void)pair_block;   // no pairwise term
    FB_REQUIRE(N > 0 && r0 >= 0 && r0 <= r1 && r1 <= N, FB_ERR_SHAPE,
               "timeseries: loss rows [%d, %d) outside [0, %d)", r0, r1, N);
    const int P = m->out_dim;
    if (dout_rows) memset(dout_rows, 0, (size_t)(r1 - r0) * P * sizeof(float));
    double total = 0.0;
    for (int i = r0; i < r1; i++) {
        double row = 0.0;
        FB_TRY(mse_loss(&row, dout_rows ? dout_rows + (size_t)(i - r0) * P : NULL, out + (size_t)i * P,
                        y + (size_t)i * P, (size_t)P, 1.0f / (float)N));
        total += row / N;
    }
    terms[0] = total;
    return FB_OK;
}

const scenario scenario_timeseries = {
    .name = "timeseries",
    .default_method = "gated_add",
    .record_layout = "x = [series (seq_len, features) | calendar ids (seq_len, 3): day of week, month, quarter "
                     "(rows of their embedding tables) | calendar scalars (seq_len, 7): day of month, day of year, "
                     "week of year (scaled to [0, 1]), weekend, month start, month end, holiday | celestial tokens "
                     "(13, 3): sin and cos of the body's phase, cos of its phase minus the sun's]; "
                     "y = the next pred_len values of feature 0",
    .source = "000",
    .description = "series embedding, calendar fusion, transformer encoder (deep path) and celestial attention "
                   "over 13 body tokens (shallow path) joined by the method, flatten forecasting head; MSE",
    .fits = ts_fits,
    .create = ts_create,
    .sample = ts_sample,
    .forward = ts_forward,
    .backward = ts_backward,
    .loss = ts_loss,
    .destroy = ts_destroy,
};
