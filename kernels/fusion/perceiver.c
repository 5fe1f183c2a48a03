// perceiver (003, FUS-3 "Perceiver-Style Latent Fusion", the document's PerceiverFusion): learned
// latents attend to the sequence and the metadata tokens together, are refined by self-attention
// layers and pooled. A pooling method: a (B, S, D), b (B, T = K, E) -> out (B, D) (out_positions 1).
//
// Variant "document" (0), the document's class:
//   X      = input_proj([a; b])                 (B, S + K, D)   Linear(D → D) on every token
//   Q0     = latents broadcast over the batch   (B, L, D)       latents (L, D) ~ N(0, 1) (torch.randn)
//   Λ_0    = cross_norm(Q0 + MHA(Q0, X, X))                      cross_attn: H heads, dropout p
//   Λ_l+1  = TransformerEncoderLayer_l(Λ_l)     l < layers      post-norm, ReLU, FFN width F, dropout p
//   out    = mean over the L latents of Λ_layers                 (B, D)
// Variant "shipped", the project (../shared/SOURCE-SYSTEMS.md, 003 "PerceiverFusion as shipped"):
//   X      = [seq_proj(a); cat_proj(c)]          (B, S + 1, D)   c = b flattened (B, C = K·E): ONE
//            metadata token; seq_proj Linear(D → D), cat_proj Linear(C → D)
//   latents ~ N(0, 0.02²); Λ_0 as above; `layers` (default 2) pre-norm layers (GELU, FFN 4·D);
//   out    = output_proj(mean over latents)      Linear(D → D); no key padding mask (it attends to
//            padding positions, as shipped).
//
// Choices where the sources are silent or do not fit the interface (write-ups of each):
//   - latent_dim = D (the document's default is 256): the method's output must be (B, D), and the
//     shipped project uses latent dim = D too. The document's concatenation [seq; metadata] before one
//     Linear(input_dim → latent_dim) needs metadata width E = D, so the document variant refuses
//     E ≠ D (the shipped variant projects the metadata separately and takes any E).
//   - num_latents L = c->L (fusion_default_config: 32), 64 (the document's and project's default)
//     when 0. layers = c->layers, else 4 (document num_layers) / 2 (shipped). Heads H = c->H (the
//     document's and project's 8 where 8 divides D). Dropout p = c->dropout (0.1 in both) on the
//     cross-attention probabilities and at every dropout of the encoder layers.
//   - FFN width F = c->F, else 2048 in the document variant — nn.TransformerEncoderLayer(latent_dim,
//     nhead)'s default dim_feedforward, which the document's code gets — and 4·D in the shipped
//     variant (the project's transformer layers: pre-norm, GELU, FFN 4D). LayerNorm eps 1e-5
//     (torch's default) everywhere; no final LayerNorm after the shipped pre-norm stack (none named).
//   - Missing metadata: T (= K) may be any count ≥ 1 ("fewer tokens"). Document variant: a_mask and
//     b_mask become the cross-attention's key padding mask over the S + K keys — masking a key is
//     exactly dropping that token, the document's "handles missing categorical columns gracefully";
//     a sample with every key masked gets attention output out_proj.bias (attention.h) instead of
//     NaN. Shipped variant: a_mask is ignored (it attends to padding, as shipped) and a missing
//     column (b_mask) is the project's unknown index 0, a zero embedding with no gradient: its E
//     values of c are zeroed and get no gradient.
//   - Parameter names follow the torch modules in tests/refs/fusion/perceiver.py: latents,
//     input_proj | seq_proj, cat_proj, cross_attn.{q,k,v}_proj_{weight,bias}, cross_attn.out_proj,
//     cross_norm, self_attn_layers.<l>.* (encoder_layer.h's torch names), output_proj (shipped).
//     Initialisation: nn.Linear's default, MHA/LayerNorm as torch, latents N(0, 1) / N(0, 0.02²).
//   - Randomness: the cross-attention's dropout is site 0 of this fusion point. The layer stack
//     needs 4 sites per layer (encoder_layer.h), more than the 15 left of a fusion point's 16 at the
//     document's 4 layers, so it draws from its own stream: seed' = mix(seed, site 1 of this point),
//     layer l at sites 4l .. 4l + 3 — a pure function of (seed, step, fusion site), distinct from
//     every other site, for any layer count. Both keys keep c.rng.row0: the cross-attention and
//     the layers take the B samples as their rows (a layer's FFN then sees latent row b·L + l at
//     its global index, encoder_layer.h), so every mask follows the sample's global row.
// Diagnostics: the head-averaged cross-attention weights (B·L rows, S + K or S + 1 columns).
// Cost: the key projections run per sample straight into each sample's rows of X (no concatenated
// copy of a); the latents are copied once per sample as the attention's query (the interface takes
// (B, L, D) queries), and their gradient is the sum over samples. The residual Q0 + MHA is added in
// place into the attention output before the norm.
#include "fusion.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broadcast.h"
#include "../encoder_layer.h"

enum { PERC_DOCUMENT, PERC_SHIPPED };
#define PERC_EPS 1e-5f
#define PERC_MAX_LAYERS 64

typedef struct {
    encoder_layer_config cfg;
    encoder_layer_params p, g;
    encoder_layer_acts a, da;
    float *out, *dout;          // (B, L, D) Λ_{l+1}, and its gradient
} perc_layer;

typedef struct {
    int L, layers, Tk;          // Tk keys per sample: S + K (document) or S + 1 (shipped)
    mha_config mc;
    float *latents, *dlatents;  // (L, D)
    linear_params in_proj, din_proj;                                          // document
    linear_params seq_proj, dseq_proj, cat_proj, dcat_proj, out_proj, dout_proj;   // shipped
    mha_params attn, dattn;
    layernorm_params norm, dnorm;
    mha_acts ma, dma;
    float *x, *dx;              // (B, Tk, D) projected tokens (keys and values)
    float *q0, *dq0;            // (B, L, D) the latents per sample
    float *r, *dr;              // (B, L, D) Q0 + MHA(Q0, X, X)
    float *mean, *rstd;         // (B·L) cross_norm statistics
    float *lat0, *dlat0;        // (B, L, D) Λ_0
    float *attw;                // (B, L, Tk) head-averaged cross-attention weights
    float *cin, *dcin;          // shipped: (B, C) c with missing columns zeroed, and its gradient
    float *pooled, *dpooled;    // shipped: (B, D) mean over latents
    uint8_t *mask;              // (B, Tk) document: key padding mask (malloc'd)
    int masked;                 // 1 when this forward used the mask
    perc_layer layer[];
} perc_self;

static uint64_t perc_mix(uint64_t x) {   // splitmix64's finaliser
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// The layer stack's key: its own seed derived from the run seed and this point's site 1.
static fb_rng_key perc_layer_rng(const fusion *f) {
    fb_rng_key k = fusion_rng(f, 1);
    k.seed = perc_mix(k.seed ^ perc_mix(0x7065726365697665ull ^ k.site));
    k.site = 0;
    return k;
}

static fb_status perc_create(fusion *f, fb_layout *P, fb_layout *A) {
    fusion_config *c = &f->c;
    const int doc = c->variant == PERC_DOCUMENT, D = c->D, B = c->B;
    FB_REQUIRE(!doc || c->E == D, FB_ERR_SHAPE,
               "perceiver (document): metadata width E=%d must equal D=%d (the document concatenates "
               "[sequence; metadata] before one input_proj Linear(D -> latent dim)); variant \"shipped\" "
               "projects the metadata separately", c->E, D);
    if (c->L == 0) c->L = 64;
    if (c->layers == 0) c->layers = doc ? 4 : 2;
    if (c->F == 0) c->F = doc ? 2048 : 4 * D;
    FB_REQUIRE(c->L > 0, FB_ERR_CONFIG, "perceiver: L=%d latents must be > 0", c->L);
    FB_REQUIRE(c->layers > 0 && c->layers <= PERC_MAX_LAYERS, FB_ERR_CONFIG,
               "perceiver: layers=%d outside [1, %d]", c->layers, PERC_MAX_LAYERS);
    FB_REQUIRE(c->F > 0, FB_ERR_CONFIG, "perceiver: FFN width F=%d must be > 0", c->F);
    FB_REQUIRE(c->H > 0 && D % c->H == 0, FB_ERR_CONFIG, "perceiver: H=%d heads must divide D=%d", c->H, D);
    f->out_positions = 1;
    FB_TRY(fusion_alloc_self(f, sizeof(perc_self) + (size_t)c->layers * sizeof(perc_layer)));
    perc_self *s = f->self;
    s->L = c->L;
    s->layers = c->layers;
    s->Tk = c->S + (doc ? c->T : 1);
    s->mc = (mha_config){.D = D, .Ek = D, .Ev = D, .H = c->H, .dropout = c->dropout};
    const int L = s->L, C = c->T * c->E;
    char name[FB_NAME_MAX], sub[FB_NAME_MAX], pre[FB_NAME_MAX];

    int li = fb_layout_add(P, c->prefix ? c->prefix : "", "latents", 2, (int[]){L, D}, FB_INIT_NORMAL,
                           doc ? 1.0f : 0.02f, &s->latents, &s->dlatents);
    int ok = li >= 0;
    if (doc) {
        ok = ok && linear_declare(P, fusion_name(f, "input_proj", name), D, D, 1, &s->in_proj, &s->din_proj) >= 0;
    } else {
        ok = ok && linear_declare(P, fusion_name(f, "seq_proj", name), D, D, 1, &s->seq_proj, &s->dseq_proj) >= 0;
        ok = ok && linear_declare(P, fusion_name(f, "cat_proj", name), C, D, 1, &s->cat_proj, &s->dcat_proj) >= 0;
    }
    ok = ok && mha_declare(P, fusion_name(f, "cross_attn", name), &s->mc, &s->attn, &s->dattn) >= 0;
    ok = ok && layernorm_declare(P, fusion_name(f, "cross_norm", name), D, &s->norm, &s->dnorm) >= 0;
    for (int l = 0; ok && l < s->layers; l++) {
        perc_layer *y = &s->layer[l];
        y->cfg = (encoder_layer_config){.D = D, .H = c->H, .F = c->F,
                                        .activation = doc ? FB_ACT_RELU : FB_ACT_GELU,
                                        .dropout = c->dropout, .norm_first = !doc, .eps = PERC_EPS,
                                        .site = (uint32_t)(ENC_LAYER_SITES * l)};
        snprintf(sub, sizeof sub, "self_attn_layers.%d", l);
        ok = encoder_layer_declare(P, fusion_name(f, sub, name), &y->cfg, &y->p, &y->g) >= 0;
    }
    if (!doc) ok = ok && linear_declare(P, fusion_name(f, "output_proj", name), D, D, 1, &s->out_proj, &s->dout_proj) >= 0;
    if (!ok) return FB_ERR_SHAPE;

    fusion_name(f, "perceiver", pre);
    const int *bld = (int[]){B, L, D};
    ok = fb_layout_add(A, pre, "x", 3, (int[]){B, s->Tk, D}, FB_INIT_ZERO, 0, &s->x, &s->dx) >= 0;
    ok = ok && fb_layout_add(A, pre, "q0", 3, bld, FB_INIT_ZERO, 0, &s->q0, &s->dq0) >= 0;
    ok = ok && fb_layout_add(A, pre, "r", 3, bld, FB_INIT_ZERO, 0, &s->r, &s->dr) >= 0;
    ok = ok && fb_layout_add(A, pre, "mean", 1, (int[]){B * L}, FB_INIT_ZERO, 0, &s->mean, NULL) >= 0;
    ok = ok && fb_layout_add(A, pre, "rstd", 1, (int[]){B * L}, FB_INIT_ZERO, 0, &s->rstd, NULL) >= 0;
    ok = ok && fb_layout_add(A, pre, "lat0", 3, bld, FB_INIT_ZERO, 0, &s->lat0, &s->dlat0) >= 0;
    ok = ok && fb_layout_add(A, pre, "attw", 3, (int[]){B, L, s->Tk}, FB_INIT_ZERO, 0, &s->attw, NULL) >= 0;
    ok = ok && mha_declare_acts(A, fusion_name(f, "perceiver.cross_attn", name), &s->mc, B, L, s->Tk, &s->ma, &s->dma) >= 0;
    for (int l = 0; ok && l < s->layers; l++) {
        perc_layer *y = &s->layer[l];
        snprintf(sub, sizeof sub, "perceiver.layers.%d", l);
        fusion_name(f, sub, name);
        ok = encoder_layer_declare_acts(A, name, &y->cfg, B, L, &y->a, &y->da) >= 0;
        ok = ok && fb_layout_add(A, name, "out", 3, bld, FB_INIT_ZERO, 0, &y->out, &y->dout) >= 0;
    }
    if (!doc) {
        ok = ok && fb_layout_add(A, pre, "cin", 2, (int[]){B, C}, FB_INIT_ZERO, 0, &s->cin, &s->dcin) >= 0;
        ok = ok && fb_layout_add(A, pre, "pooled", 2, (int[]){B, D}, FB_INIT_ZERO, 0, &s->pooled, &s->dpooled) >= 0;
    } else {
        s->mask = malloc((size_t)B * s->Tk);
        if (!s->mask) return fb_fail(FB_ERR_ALLOC, "perceiver: %zu bytes of key padding mask", (size_t)B * s->Tk);
    }
    return ok ? FB_OK : FB_ERR_SHAPE;
}

static void perc_destroy(fusion *f) {
    perc_self *s = f->self;
    if (s) free(s->mask);
    free(s);
    f->self = NULL;
}

// The metadata input of the shipped cat_proj: b itself, or its copy with missing columns zeroed.
static const float *perc_cat_input(const fusion *f, const float *b) {
    return f->c.b_mask ? ((const perc_self *)f->self)->cin : b;
}

static fb_status perc_forward(fusion *f, float *out, const float *a, const float *b) {
    perc_self *s = f->self;
    const fusion_config *c = &f->c;
    const int doc = c->variant == PERC_DOCUMENT;
    const int B = c->B, S = c->S, T = c->T, D = c->D, L = s->L, Tk = s->Tk, C = T * c->E;
    const size_t LD = (size_t)L * D;
    const int train = c->training;
    fb_rng_key k0 = fusion_rng(f, 0), kl = perc_layer_rng(f);

    // X: every sample's tokens projected into its rows.
    const float *cat = b;
    if (!doc && c->b_mask) {
        for (int i = 0; i < B; i++)
            for (int t = 0; t < T; t++) {
                float *dst = s->cin + ((size_t)i * T + t) * c->E;
                if (c->b_mask[(size_t)i * T + t]) memset(dst, 0, (size_t)c->E * sizeof(float));
                else memcpy(dst, b + ((size_t)i * T + t) * c->E, (size_t)c->E * sizeof(float));
            }
        cat = s->cin;
    }
    for (int i = 0; i < B; i++) {
        float *xi = s->x + (size_t)i * Tk * D;
        if (doc) {
            FB_TRY(linear_forward(xi, a + (size_t)i * S * D, &s->in_proj, S, D, D));
            FB_TRY(linear_forward(xi + (size_t)S * D, b + (size_t)i * T * D, &s->in_proj, T, D, D));
        } else {
            FB_TRY(linear_forward(xi, a + (size_t)i * S * D, &s->seq_proj, S, D, D));
            FB_TRY(linear_forward(xi + (size_t)S * D, cat + (size_t)i * C, &s->cat_proj, 1, C, D));
        }
    }
    s->masked = doc && (c->a_mask || c->b_mask);
    if (s->masked)
        for (int i = 0; i < B; i++) {
            uint8_t *m = s->mask + (size_t)i * Tk;
            for (int t = 0; t < S; t++) m[t] = c->a_mask ? c->a_mask[(size_t)i * S + t] != 0 : 0;
            for (int t = 0; t < T; t++) m[S + t] = c->b_mask ? c->b_mask[(size_t)i * T + t] != 0 : 0;
        }

    for (int i = 0; i < B; i++) memcpy(s->q0 + (size_t)i * LD, s->latents, LD * sizeof(float));
    FB_TRY(mha_forward(s->r, s->attw, &s->ma, s->q0, s->x, s->x, s->masked ? s->mask : NULL, &s->attn, &s->mc,
                       B, L, Tk, D, D, train, &k0));
    const size_t n = (size_t)B * LD;
    const float *restrict lat = s->latents;
    float *restrict r = s->r;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++)
        for (size_t j = 0; j < LD; j++) r[(size_t)i * LD + j] += lat[j];
    FB_TRY(layernorm_forward(s->lat0, s->mean, s->rstd, s->r, &s->norm, B * L, D, PERC_EPS));

    const float *xl = s->lat0;
    for (int l = 0; l < s->layers; l++) {
        perc_layer *y = &s->layer[l];
        FB_TRY(encoder_layer_forward(y->out, &y->a, xl, NULL, &y->p, &y->cfg, B, L, train, &kl));
        xl = y->out;
    }
    if (doc) {
        fusion_sum_positions(out, xl, B, L, D, 1.0f / (float)L, 0, NULL);
    } else {
        fusion_sum_positions(s->pooled, xl, B, L, D, 1.0f / (float)L, 0, NULL);
        FB_TRY(linear_forward(out, s->pooled, &s->out_proj, B, D, D));
    }
    f->diag.attention = s->attw;
    f->diag.att_rows = B * L;
    f->diag.att_cols = Tk;
    return FB_OK;
}

static fb_status perc_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    perc_self *s = f->self;
    const fusion_config *c = &f->c;
    const int doc = c->variant == PERC_DOCUMENT;
    const int B = c->B, S = c->S, T = c->T, D = c->D, E = c->E, L = s->L, Tk = s->Tk, C = T * E;
    const size_t LD = (size_t)L * D, n = (size_t)B * LD;
    const int train = c->training;
    fb_rng_key k0 = fusion_rng(f, 0), kl = perc_layer_rng(f);

    // The mean over latents: every latent of sample i gets dpooled[i] / L.
    const float *dp = dout;
    if (!doc) {
        memset(s->dpooled, 0, (size_t)B * D * sizeof(float));
        FB_TRY(linear_backward(s->dpooled, &s->dout_proj, dout, s->pooled, &s->out_proj, B, D, D));
        dp = s->dpooled;
    }
    float *dtop = s->layers ? s->layer[s->layers - 1].dout : s->dlat0;
    const float invL = 1.0f / (float)L;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int il = 0; il < B * L; il++) {
        const float *restrict g = dp + (size_t)(il / L) * D;
        float *restrict d = dtop + (size_t)il * D;
        for (int j = 0; j < D; j++) d[j] = g[j] * invL;
    }
    for (int l = s->layers - 1; l >= 0; l--) {
        perc_layer *y = &s->layer[l];
        float *dprev = l ? s->layer[l - 1].dout : s->dlat0;
        const float *xprev = l ? s->layer[l - 1].out : s->lat0;
        memset(dprev, 0, n * sizeof(float));
        FB_TRY(encoder_layer_backward(dprev, &y->g, &y->da, y->dout, xprev, &y->a, &y->p, &y->cfg, B, L, train, &kl));
    }
    memset(s->dr, 0, n * sizeof(float));
    FB_TRY(layernorm_backward(s->dr, &s->dnorm, s->dlat0, s->r, s->mean, s->rstd, &s->norm, B * L, D));
    memcpy(s->dq0, s->dr, n * sizeof(float));                 // the residual Q0 + MHA
    memset(s->dx, 0, (size_t)B * Tk * D * sizeof(float));
    FB_TRY(mha_backward(s->dq0, s->dx, s->dx, &s->dattn, &s->dma, s->dr, s->q0, s->x, s->x, &s->ma, &s->attn,
                        &s->mc, B, L, Tk, D, D, train, &k0));
    fusion_sum_positions(s->dlatents, s->dq0, 1, B, (int)LD, 1.0f, 1, NULL);   // Σ over samples

    const float *cat = perc_cat_input(f, b);
    float *dcat = db;
    if (!doc && c->b_mask && db) {
        memset(s->dcin, 0, (size_t)B * C * sizeof(float));
        dcat = s->dcin;
    }
    for (int i = 0; i < B; i++) {
        const float *dxi = s->dx + (size_t)i * Tk * D;
        float *dai = da ? da + (size_t)i * S * D : NULL;
        if (doc) {
            FB_TRY(linear_backward(dai, &s->din_proj, dxi, a + (size_t)i * S * D, &s->in_proj, S, D, D));
            FB_TRY(linear_backward(db ? db + (size_t)i * T * D : NULL, &s->din_proj, dxi + (size_t)S * D,
                                   b + (size_t)i * T * D, &s->in_proj, T, D, D));
        } else {
            FB_TRY(linear_backward(dai, &s->dseq_proj, dxi, a + (size_t)i * S * D, &s->seq_proj, S, D, D));
            FB_TRY(linear_backward(dcat ? dcat + (size_t)i * C : NULL, &s->dcat_proj, dxi + (size_t)S * D,
                                   cat + (size_t)i * C, &s->cat_proj, 1, C, D));
        }
    }
    if (!doc && c->b_mask && db)   // a missing column's zero embedding takes no gradient
        for (int i = 0; i < B; i++)
            for (int t = 0; t < T; t++) {
                if (c->b_mask[(size_t)i * T + t]) continue;
                const float *src = s->dcin + ((size_t)i * T + t) * E;
                float *dst = db + ((size_t)i * T + t) * E;
                for (int e = 0; e < E; e++) dst[e] += src[e];
            }
    return FB_OK;
}

static double perc_flops(const fusion *f, int backward) {
    const perc_self *s = f->self;
    const fusion_config *c = &f->c;
    const int doc = c->variant == PERC_DOCUMENT;
    const int B = c->B, S = c->S, T = c->T, D = c->D, L = s->L, C = T * c->E;
    const double n = (double)B * L * D;
    double total;
    if (!backward) {
        total = doc ? linear_flops_forward(B * (S + T), D, D, 1)
                    : linear_flops_forward(B * S, D, D, 1) + linear_flops_forward(B, C, D, 1) + linear_flops_forward(B, D, D, 1);
        total += mha_flops_forward(&s->mc, B, L, s->Tk) + n /* residual */ + layernorm_flops_forward(B * L, D) + n /* mean */;
        for (int l = 0; l < s->layers; l++) total += encoder_layer_flops_forward(&s->layer[l].cfg, B, L);
    } else {
        total = doc ? linear_flops_backward(B * (S + T), D, D, 1, 1)
                    : linear_flops_backward(B * S, D, D, 1, 1) + linear_flops_backward(B, C, D, 1, 1) + linear_flops_backward(B, D, D, 1, 1);
        total += mha_flops_backward(&s->mc, B, L, s->Tk, 1) + n /* dlatents */ + layernorm_flops_backward(B * L, D) + n /* mean */;
        for (int l = 0; l < s->layers; l++) total += encoder_layer_flops_backward(&s->layer[l].cfg, B, L, 1);
    }
    return total;
}

const fusion_method fusion_perceiver = {
    .name = "perceiver", .source = "003", .kind = FUSION_SEQUENCE,
    .variants = {"document", "shipped", NULL},
    .formula = "X = input_proj([a; b]);  lat = LN(Q + MHA(Q, X, X));  lat = EncoderLayer^n(lat);  out = mean_L(lat)",
    .create = perc_create, .forward = perc_forward, .backward = perc_backward, .flops = perc_flops,
    .destroy = perc_destroy,
};
