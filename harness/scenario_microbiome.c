// microbiome (003, "Attention All Microbes", jbk708/aam): a miniature of the source system's
// SequencePredictor with the categorical fusion method as a parameter. Facts from
// ../shared/SOURCE-SYSTEMS.md (003) and the seed document; choices marked "choice".
//
// Per sample: up to S ASV tokens (id 0 = padding) with their log-abundances, and K categorical
// metadata columns (id 0 = unknown). Shapes (legend in kernels/README.md):
//
//   h0[b, s]  = γ(ℓ) ⊙ Emb[id] + β(ℓ)                 (B, S, D)  ASV embedding + log-abundance FiLM
//   X         = SampleEncoder(h0, padding mask)        (B, S, D)  `layers` pre-norm layers + LN(1e-6)
//   e         = AttentionPooling_s(X)                  (B, D)     sample embedding, UniFrac loss
//   c[b, k]   = dropout(CatEmb_k[cat_k])               (B, K, E)  E = cat_dim; flat (B, K·E) = C
//   target path, by the method's kind:
//     sequence     Z = fusion(X, c) (B, S, D) → TargetEncoder(Z, mask) → AttentionPooling_t → p
//     pooling seq. p = fusion(X, c) (B, D)  (the method pools: no target encoder, no pooling)
//     vector       q = AttentionPooling_t(TargetEncoder(X, mask)) (B, D); p = fusion(q, c (B, C))
//   ŷ         = head(p)                                (B, 1)     Linear(D → 1)
//   out row   = [ŷ, e]                                 out_dim = 1 + D
//
// Blocks:
//   - ASV embedding `asv_embedding.weight` (V, D), N(0, 1) as nn.Embedding: row v−1 is ASV id v.
//     Id 0 (padding) has no row: its embedding is the zero vector with no gradient — torch's
//     Embedding(V + 1, D, padding_idx = 0) without its constant zero row (choice: no dead parameter).
//   - Log-abundance FiLM (choice, our reading of "ASV embedding + log-abundance FiLM"): with ℓ the
//     token's log-abundance (x stores log(1 + count)), γ(ℓ) = Linear(1 → D)(ℓ) `asv_film.gamma`,
//     β(ℓ) = Linear(1 → D)(ℓ) `asv_film.beta`, h = γ ⊙ emb + β at every position (padding included,
//     where emb = 0 and ℓ = 0: h = β's bias; padding is masked downstream, as torch would compute it).
//     Initialisation: γ identity (weight 0, bias 1, as the project's FiLM head), β weight nn.Linear's
//     default U(±1), bias 0 — so the abundance enters from the start and the modulation is learned.
//   - Transformer layers (`sample_encoder.layers.<l>`, `target_encoder.layers.0`): pre-norm, GELU,
//     FFN F = 4D, dropout, key padding mask, LayerNorm eps 1e-5 inside the layers (torch's default);
//     each encoder ends in a LayerNorm eps 1e-6 (`*.norm`; choice: the target encoder is the same
//     block as the sample encoder, with 1 layer).
//   - AttentionPooling (`*_pooling.query.weight` (1, D) no bias, U(±1/√D); `*_pooling.norm`, eps
//     1e-5): s_i = (w · h_i)/√D, padding → −∞, a = softmax(s), a ← a / (Σ a + 1e-8) (the
//     renormalisation over the mask; Σ a = 1 already, so its gradient is the softmax's to float
//     precision), pooled = LN(Σ a_i h_i). An all-padding sample gets uniform weights 1/S (no
//     gradient to the scores).
//   - Categorical embeddings `cat_embedding.<k>.weight` (card, E), N(0, 1), one per column in
//     sorted order; id 0 (unknown) is the zero vector with no gradient (padding_idx 0, no stored
//     row, as the ASV table); dropout (c->dropout, 0.1 in the source) on the (B, K·E) result.
//   - Head `head` Linear(D → 1), nn.Linear's default.
//
// Sizes (model_config; 0 takes the default): D 64, H 4, layers 2 (sample encoder; the target
// encoder has 1), F 4D, max_asvs S 32, vocab V 256, columns K 3, card 4 (categories 1..card per
// column), cat_dim E 16 — the source's are D 128, 4 heads, 4 layers, up to 1024 ASVs, batch 8 per
// GPU; smaller here so that forward + backward at B = 8 stays near 10 ms on one core. dropout is
// used as given (0.1 in the source; 0 means none).
//
// Fusion methods (one fusion point, #0: rng site 0, tensor prefix "fusion"):
//   - sequence methods fit: a = X (B, S, D), b = the K category tokens (B, K, E), a_mask = ASV
//     padding, b_mask = unknown columns (methods that read it mask them). A method that pools
//     (out_positions 1, e.g. perceiver) replaces the target encoder and pooling. A method whose b
//     is one-hot category indicators (conditional_scaling) gets b = one-hot (B, K, card + 1) of the
//     ids (unknown = index 0, a learned row there) and no categorical embedding tables exist. (The
//     project applies conditional scaling to its prediction, y ← y · scale + bias; here it sits at
//     fusion point #0 like every method — choice: one fusion point, so methods compare.)
//   - vector methods fit when they accept b wider or narrower than a: a = the pooled target
//     representation (B, D), b = the concatenated category embeddings (B, K·E) (the document's GMU
//     integration, after target_pooling). A vector method that needs b as wide as a (E = D: add,
//     mul, gated, ...) is refused: the categorical embedding has its own width. fits() decides this
//     by creating the method once at D = 8, E = 12 in scratch layouts (fits() names no method).
//   - With today's table: sequence attention, seq_cross_attention, categorical_concat,
//     categorical_add, conditional_scaling, perceiver (pooling); vector concat_proj, concat_mlp,
//     film, modality_dropout, gmu, film_head. Refused: add, mul, gated, gated_add, gated_interp,
//     cross_attention, transformer_concat, shomr, energy_aware_adaptive (E = D).
//   - perceiver's document variant concatenates [sequence; metadata] before one Linear and needs
//     E = D: with cat_dim ≠ D its create refuses (set cat_dim = D, or use variant "shipped").
//   - H = the model's heads, dropout = the model's, other sizes the method's defaults (perceiver:
//     64 latents, its own layer count).
//   - The fusion runs on its created c->B rows: a smaller batch leaves the rows past it zero (inputs
//     and output gradients), so they add nothing to the parameter gradients.
//
// Loss (terms "huber", "unifrac"; weights 1): Huber (δ = 1) of ŷ against y's target, mean over the N
// rows; UniFrac pairwise loss of kernels/loss.h on e, pair scope pair_block, target T below. Rows
// [r0, r1) take their share: huber = Σ_{r0≤i<r1} ℓ_i / N; unifrac = pairs counted by first row. The
// Huber gradient is taken from the whole N rows (sliced), so its rows are bitwise those of the
// one-process run whatever the range; kernels/loss.h makes the UniFrac rows so.
//
// Synthetic data (until the datasets issue; deterministic in (seed, index)). Records:
//   x = [ids (S), log(1 + count) (S), category ids (K)]   in_stride = 2S + K
//   y = [target, ids (S)]                                 y_stride = 1 + S
// G = min(8, V) clades, ASV v in clade ⌊(v − 1) G / V⌋. Model constants from the seed: clade base
// log-abundance, per (column, category, clade) abundance shifts, per-ASV offsets, clade target
// effects u_g, per (column, category, clade) interaction effects v, per (column, category) main
// effects a. Per sample: true categories uniform in 1..card, each recorded as 0 (unknown) with
// probability 0.1 (the true one still drives the data); richness n uniform in [max(1, S/4),
// min(S, V)]; clade logits λ_g = base + Σ_k shift + 0.5 N(0,1); n distinct ASVs drawn by clade
// (softmax λ) then uniformly inside it; abundance weights λ_g(a) + offset_a + 0.7 N(0,1) → p_a
// (softmax); read depth uniform in [500, 5000], count = max(1, round(depth p_a)); tokens sorted by
// count (descending; ties by id), padding after. Target:
//   y = 2 Σ_g f_g (u_g + Σ_k v[k, cat_k, g]) + Σ_k a[k, cat_k] + 0.1 N(0,1),  f_g = Σ_{a ∈ g} p_a
// — composition (f), categories (a) and their interaction (v: the categories change what each
// clade is worth) all matter, and unknown columns leave irreducible noise.
// UniFrac target: unweighted UniFrac on a two-level tree, root → clade node (length 1) → ASV leaf
// (length 1): T_ij = Σ branch lengths under exactly one sample / Σ under either (computed from the
// two y records' ids alone; checked on SOURCE-SYSTEMS.md's worked example in the test). The datasets
// issue replaces it with Striped UniFrac matrices.
//
// Fusion point and module tags: the one fusion point is registered with the model as "fusion"
// (model_fusion_points). Module tags (kernels/layout.h, for output norms): fusion_out.z (the
// method), head.pred (the head Linear, rows of width 1), each encoder's final norm (*.y), each
// pooling's norm (*_pooling.out), and inside the layers what encoder_layer_declare_acts tags (the
// layers are pre-norm, so a layer's own output is a residual sum, untagged). h0 (FiLM of the ASV
// embedding) and the categorical tokens are no Linear, LayerNorm or attention output.
//
// Randomness (kernels/rng.h) and row decomposition: every random draw is a function of (seed,
// step, site, global row = first + i): each key handed to a kernel carries row0 = first (the
// transformer layers run on the whole local batch, the categorical dropout takes a sample's (K, E)
// block as one row), and so does the fusion point's c.rng (the method's dropout, sampled routes and
// modality masks). So rows [k, N) run with first = k reproduce the one-process rows.
// Threads: the kernels parallelise inside (above their thresholds); every accumulation has a fixed
// order, so results do not depend on the thread count.
#include "model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/dropout.h"
#include "../kernels/encoder_layer.h"
#include "../kernels/layernorm.h"
#include "../kernels/linear.h"
#include "../kernels/loss.h"
#include "../kernels/rng.h"
#include "../kernels/softmax.h"

// Defaults (the source's are D 128, 4 heads, 4 layers, up to 1024 ASVs; smaller here for speed).
#define MB_D 64
#define MB_H 4
#define MB_LAYERS 2
#define MB_MAX_ASVS 32
#define MB_VOCAB 256
#define MB_COLUMNS 3
#define MB_CARD 4
#define MB_CAT_DIM 16
#define MB_TARGET_LAYERS 1
#define MB_MAX_LAYERS 16
#define MB_CLADES 8
#define MB_P_UNKNOWN 0.1f
#define MB_EPS_LAYER 1e-5f    // inside the transformer layers (torch's default)
#define MB_EPS_FINAL 1e-6f    // each encoder's final LayerNorm
#define MB_EPS_POOL 1e-5f     // AttentionPooling's LayerNorm
#define MB_HUBER_DELTA 1.0f

// Seed tags: each randomness stream of the model has its own derived seed (the fusion point uses
// the run seed itself with its sites).
enum { TAG_SAMPLE_ENC = 0x53454e43u, TAG_TARGET_ENC = 0x54454e43u, TAG_CAT = 0x43415444u,
       TAG_DATA = 0x44415441u, TAG_CONST = 0x434f4e53u };

static uint64_t mb_mix(uint64_t x) {   // splitmix64's finaliser
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

enum { MB_SEQ, MB_POOL, MB_VEC };

typedef struct {
    encoder_layer_config cfg;
    encoder_layer_params p, g;
    encoder_layer_acts a, da;     // for B samples
    float *out, *dout;            // (B, S, D)
    int first_param;              // index of its first parameter tensor (model_grads_ready)
} mb_layer;

typedef struct {                  // `layers` pre-norm layers + a final LayerNorm
    int n;
    uint32_t tag;
    mb_layer *layer;              // [n]
    layernorm_params norm, dnorm;
    float *y, *dy;                // (B, S, D) the output and its gradient
    float *mean, *rstd;           // (B·S)
} mb_encoder;

typedef struct {                  // AttentionPooling
    float *w, *dw;                // query.weight (1, D)
    layernorm_params norm, dnorm;
    float *att, *datt;            // (B, S) weights; datt scratch
    float *pre, *dpre;            // (B, D) Σ a_i h_i
    float *mean, *rstd;           // (B)
    float *out, *dout;            // (B, D)
    int first_param;
} mb_pool;

typedef struct {
    int mode, onehot;
    int B, S, D, V, K, card, E, G;
    float dropout;
    uint64_t seed;
    // parameters
    float *emb, *demb;                       // (V, D)
    linear_params gam, dgam, bet, dbet;      // Linear(1 → D) each
    mb_encoder senc, tenc;
    mb_pool spool, tpool;
    float **catw, **dcatw;                   // [K] (card, E)
    linear_params head, dhead;               // (1, D), (1)
    fusion fus;
    int fus_created;
    // activations
    float *h0, *dh0;                         // (B, S, D)
    float *cat_raw, *dcat_raw;               // (B, K, E) looked up
    float *cat, *dcat;                       // (B, K, E) after dropout: the fusion's b
    float *onehot_b;                         // (B, K, card + 1) for one-hot methods
    float *z, *dz;                           // fusion output (B, S, D) or (B, D)
    float *pred, *dpred;                     // (B, 1)
    uint8_t *amask, *bmask;                  // (B, S), (B, K): 1 = padding / unknown
    // generator constants and the UniFrac tree
    float *base, *shift, *offset, *ucl, *vint, *amain;
    int *parent;                             // nodes: 0 root, 1..V leaves, V+1..V+G clades
    float *blen;
    const fb_microbiome_data *data;          // samples from files, or NULL (the generator)
    // Parameter-tensor indices where backward's stages begin (model_grads_ready; DDP buckets).
    int first_cat, first_fusion, first_head;
} mb_self;

// ---------------------------------------------------------------------------------------------
// UniFrac

// Unweighted UniFrac of two samples on a rooted tree: nodes 0..n_nodes−1, parent[v] (−1 = root),
// branch length blen[v] above v; a sample is the list of its observed leaves (duplicates and
// non-positive entries are ignored). Σ lengths of branches under exactly one sample / Σ under
// either; 0 when neither has a branch. mark (n_nodes bytes, zero) and list (n_nodes ints) are
// scratch; mark is left zero. Exported for tests/test_scenario_microbiome.c.
double microbiome_unifrac(const int *parent, const float *blen, int n_nodes, const int *la, int na,
                          const int *lb, int nb, unsigned char *mark, int *list) {
    int count = 0;
    for (int side = 0; side < 2; side++) {
        const int *l = side ? lb : la;
        int n = side ? nb : na;
        unsigned char bit = (unsigned char)(1u << side);
        for (int t = 0; t < n; t++) {
            int v = l[t];
            if (v <= 0 || v >= n_nodes) continue;
            while (v >= 0 && parent[v] >= 0 && !(mark[v] & bit)) {
                if (!mark[v]) list[count++] = v;
                mark[v] |= bit;
                v = parent[v];
            }
        }
    }
    double unique = 0, total = 0;
    for (int t = 0; t < count; t++) {
        int v = list[t];
        total += blen[v];
        if (mark[v] != 3) unique += blen[v];
        mark[v] = 0;
    }
    return total > 0 ? unique / total : 0.0;
}

// ---------------------------------------------------------------------------------------------
// Blocks: transformer encoder, attention pooling

// The key of a stream of the model's own (its seed derived from the tag), row0 = the batch's first
// global row: the kernels index every draw by the sample's global row.
static fb_rng_key mb_key(const mb_self *s, uint32_t tag, const model_batch *b) {
    return (fb_rng_key){.seed = mb_mix(s->seed ^ tag), .step = b->step, .site = 0, .row0 = b->first};
}

static fb_status encoder_declare(mb_encoder *en, fb_layout *P, fb_layout *A, const char *name, int n,
                                 uint32_t tag, const mb_self *s, int F, int H) {
    char pre[FB_NAME_MAX];
    en->n = n;
    en->tag = tag;
    en->layer = calloc((size_t)n, sizeof *en->layer);
    FB_REQUIRE(en->layer, FB_ERR_ALLOC, "microbiome: no memory for %d layers", n);
    const int B = s->B, S = s->S, D = s->D;
    for (int l = 0; l < n; l++) {
        mb_layer *L = &en->layer[l];
        L->cfg = (encoder_layer_config){.D = D, .H = H, .F = F, .activation = FB_ACT_GELU,
                                        .dropout = s->dropout, .norm_first = 1, .eps = MB_EPS_LAYER,
                                        .site = (uint32_t)(ENC_LAYER_SITES * l)};
        FB_TRY(encoder_layer_check_config(&L->cfg));
        snprintf(pre, sizeof pre, "%s.layers.%d", name, l);
        L->first_param = P->count;
        if (encoder_layer_declare(P, pre, &L->cfg, &L->p, &L->g) < 0) return FB_ERR_SHAPE;
        if (encoder_layer_declare_acts(A, pre, &L->cfg, B, S, &L->a, &L->da) < 0 ||
            fb_layout_add(A, pre, "out", 3, (int[]){B, S, D}, FB_INIT_ZERO, 0, &L->out, &L->dout) < 0)
            return FB_ERR_SHAPE;
        fb_layout_tag_module(A, A->count - 1, encoder_layer_output_module(&L->cfg), 0);
    }
    snprintf(pre, sizeof pre, "%s.norm", name);
    if (layernorm_declare(P, pre, D, &en->norm, &en->dnorm) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, name, "y", 3, (int[]){B, S, D}, FB_INIT_ZERO, 0, &en->y, &en->dy) < 0)
        return FB_ERR_SHAPE;
    fb_layout_tag_module(A, A->count - 1, FB_MODULE_LAYERNORM, 0);   // the final norm's output
    if (fb_layout_add(A, name, "mean", 1, (int[]){B * S}, FB_INIT_ZERO, 0, &en->mean, NULL) < 0 ||
        fb_layout_add(A, name, "rstd", 1, (int[]){B * S}, FB_INIT_ZERO, 0, &en->rstd, NULL) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static void encoder_free(mb_encoder *en) {
    free(en->layer);
    en->layer = NULL;
}

// y (B, S, D) from x (B, S, D) for the batch's B samples; the dropout masks follow the global row.
static fb_status encoder_forward(mb_encoder *en, const mb_self *s, const float *x, const model_batch *b) {
    const int B = b->B, S = s->S, D = s->D;
    const fb_rng_key key = mb_key(s, en->tag, b);
    const float *in = x;
    for (int l = 0; l < en->n; l++) {
        mb_layer *L = &en->layer[l];
        FB_TRY(encoder_layer_forward(L->out, &L->a, in, s->amask, &L->p, &L->cfg, B, S, b->training, &key));
        in = L->out;
    }
    return layernorm_forward(en->y, en->mean, en->rstd, en->layer[en->n - 1].out, &en->norm, B * S, D, MB_EPS_FINAL);
}

// Accumulates dx (B, S, D) from en->dy; x as in the forward pass.
// Signals each layer's gradients final as soon as it is done (the norm, declared last, comes first).
static fb_status encoder_backward(mb_encoder *en, const model *m, float *dx, const float *x, const model_batch *b) {
    const mb_self *s = m->self;
    const int B = b->B, S = s->S, D = s->D;
    const size_t n = (size_t)B * S * D;
    const fb_rng_key key = mb_key(s, en->tag, b);
    mb_layer *top = &en->layer[en->n - 1];
    memset(top->dout, 0, n * sizeof(float));
    FB_TRY(layernorm_backward(top->dout, &en->dnorm, en->dy, top->out, en->mean, en->rstd, &en->norm, B * S, D));
    for (int l = en->n - 1; l >= 0; l--) {
        mb_layer *L = &en->layer[l];
        float *dprev = l ? en->layer[l - 1].dout : dx;
        const float *xin = l ? en->layer[l - 1].out : x;
        if (l) memset(dprev, 0, n * sizeof(float));
        FB_TRY(encoder_layer_backward(dprev, &L->g, &L->da, L->dout, xin, &L->a, &L->p, &L->cfg, B, S, b->training,
                                      &key));
        model_grads_ready(m, L->first_param);
    }
    return FB_OK;
}

static fb_status pool_declare(mb_pool *pb, fb_layout *P, fb_layout *A, const char *name, int B, int S, int D) {
    char pre[FB_NAME_MAX];
    snprintf(pre, sizeof pre, "%s.query", name);
    pb->first_param = P->count;
    if (fb_layout_add(P, pre, "weight", 2, (int[]){1, D}, FB_INIT_UNIFORM, 1.0f / sqrtf((float)D), &pb->w, &pb->dw) < 0)
        return FB_ERR_SHAPE;
    snprintf(pre, sizeof pre, "%s.norm", name);
    if (layernorm_declare(P, pre, D, &pb->norm, &pb->dnorm) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, name, "att", 2, (int[]){B, S}, FB_INIT_ZERO, 0, &pb->att, &pb->datt) < 0 ||
        fb_layout_add(A, name, "pre", 2, (int[]){B, D}, FB_INIT_ZERO, 0, &pb->pre, &pb->dpre) < 0 ||
        fb_layout_add(A, name, "mean", 1, (int[]){B}, FB_INIT_ZERO, 0, &pb->mean, NULL) < 0 ||
        fb_layout_add(A, name, "rstd", 1, (int[]){B}, FB_INIT_ZERO, 0, &pb->rstd, NULL) < 0 ||
        fb_layout_add(A, name, "out", 2, (int[]){B, D}, FB_INIT_ZERO, 0, &pb->out, &pb->dout) < 0)
        return FB_ERR_SHAPE;
    fb_layout_tag_module(A, A->count - 1, FB_MODULE_LAYERNORM, 0);   // out is the pooling norm's
    return FB_OK;
}

static int row_all_padding(const uint8_t *mask, int S) {
    for (int t = 0; t < S; t++)
        if (!mask[t]) return 0;
    return 1;
}

// pb->out (B, D) from h (B, S, D) with the padding mask (B, S).
static fb_status pool_forward(mb_pool *pb, const float *h, const uint8_t *mask, int B, int S, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    for (int i = 0; i < B; i++) {
        const uint8_t *m = mask + (size_t)i * S;
        float *a = pb->att + (size_t)i * S, *pre = pb->pre + (size_t)i * D;
        const int empty = row_all_padding(m, S);
        if (empty) {
            for (int t = 0; t < S; t++) a[t] = 1.0f / (float)S;
        } else {
            for (int t = 0; t < S; t++) {
                const float *ht = h + ((size_t)i * S + t) * D;
                float acc = 0.0f;
                for (int d = 0; d < D; d++) acc += pb->w[d] * ht[d];
                a[t] = m[t] ? -INFINITY : acc * scale;
            }
            FB_TRY(softmax_forward(a, a, 1, S));
            float sum = 0.0f;
            for (int t = 0; t < S; t++) sum += a[t];
            for (int t = 0; t < S; t++) a[t] = a[t] / (sum + 1e-8f);
        }
        memset(pre, 0, (size_t)D * sizeof(float));
        for (int t = 0; t < S; t++) {
            if (m[t] && !empty) continue;
            const float *ht = h + ((size_t)i * S + t) * D;
            for (int d = 0; d < D; d++) pre[d] += a[t] * ht[d];
        }
    }
    return layernorm_forward(pb->out, pb->mean, pb->rstd, pb->pre, &pb->norm, B, D, MB_EPS_POOL);
}

// Accumulates dh (B, S, D) and the pooling's parameter gradients from pb->dout.
static fb_status pool_backward(mb_pool *pb, float *dh, const float *h, const uint8_t *mask, int B, int S, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    memset(pb->dpre, 0, (size_t)B * D * sizeof(float));
    FB_TRY(layernorm_backward(pb->dpre, &pb->dnorm, pb->dout, pb->pre, pb->mean, pb->rstd, &pb->norm, B, D));
    for (int i = 0; i < B; i++) {
        const uint8_t *m = mask + (size_t)i * S;
        const float *a = pb->att + (size_t)i * S, *dp = pb->dpre + (size_t)i * D;
        float *da = pb->datt + (size_t)i * S;
        const int empty = row_all_padding(m, S);
        float sdot = 0.0f;
        for (int t = 0; t < S; t++) {
            da[t] = 0.0f;
            if (m[t] && !empty) continue;
            const float *ht = h + ((size_t)i * S + t) * D;
            float *dht = dh + ((size_t)i * S + t) * D;
            float acc = 0.0f;
            for (int d = 0; d < D; d++) {
                acc += dp[d] * ht[d];
                dht[d] += a[t] * dp[d];
            }
            da[t] = acc;
            sdot += a[t] * acc;
        }
        if (empty) continue;   // uniform weights: no gradient to the scores
        for (int t = 0; t < S; t++) {
            if (m[t]) continue;
            const float g = a[t] * (da[t] - sdot) * scale;   // softmax backward, then the 1/√D
            const float *ht = h + ((size_t)i * S + t) * D;
            float *dht = dh + ((size_t)i * S + t) * D;
            for (int d = 0; d < D; d++) {
                dht[d] += g * pb->w[d];
                pb->dw[d] += g * ht[d];
            }
        }
    }
    return FB_OK;
}

// ---------------------------------------------------------------------------------------------
// Method fit

// Whether the method reads b as one-hot category indicators (B, K, card + 1) instead of embedded
// tokens. fusion_method carries no field for b's convention yet, so the one such method in the
// table is recognised by name here (the single place this file names a method).
static int mb_wants_onehot(const fusion_method *m) { return m->b_onehot; }

static int mb_fits(const fusion_method *m, char *why, size_t size) {
    if (m->kind == FUSION_SEQUENCE) return 0;
    // A vector method fuses the pooled target representation (D) with the concatenated category
    // embeddings (K·cat_dim): it fits when it accepts b of another width than a.
    // The probe leaves the caller's last error as it was.
    char saved[512];
    snprintf(saved, sizeof saved, "%s", fb_last_error());
    fusion_config fc = fusion_default_config(2, 1, 1, 8, 12);
    fc.prefix = "probe";
    fc.H = 2;
    fb_layout P, A;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    fusion f;
    fb_status st = fusion_create(&f, m, &fc, &P, &A);
    if (st == FB_OK) fusion_destroy(&f);
    fb_layout_free(&P);
    fb_layout_free(&A);
    fb_fail(FB_OK, "%s", saved);
    if (st == FB_OK) return 0;
    snprintf(why, size, "a vector method needing b as wide as a (E = D); here b is the K*cat_dim category embeddings");
    return -1;
}

// ---------------------------------------------------------------------------------------------
// Create / destroy

static void mb_destroy(model *m) {
    mb_self *s = m->self;
    if (!s) return;
    if (s->fus_created) fusion_destroy(&s->fus);
    encoder_free(&s->senc);
    encoder_free(&s->tenc);
    free(s->catw);
    free(s->dcatw);
    free(s->amask);
    free(s->bmask);
    free(s->base);
    free(s->shift);
    free(s->offset);
    free(s->ucl);
    free(s->vint);
    free(s->amain);
    free(s->parent);
    free(s->blen);
    free(s);
    m->self = NULL;
}

static int mb_clade(const mb_self *s, int v) { return (int)((int64_t)(v - 1) * s->G / s->V); }

static fb_status mb_constants(mb_self *s) {
    const int G = s->G, V = s->V, KC = s->K * s->card;
    s->base = malloc((size_t)G * sizeof(float));
    s->shift = malloc((size_t)KC * G * sizeof(float));
    s->offset = malloc((size_t)V * sizeof(float));
    s->ucl = malloc((size_t)G * sizeof(float));
    s->vint = malloc((size_t)KC * G * sizeof(float));
    s->amain = malloc((size_t)KC * sizeof(float));
    s->parent = malloc((size_t)(V + G + 1) * sizeof(int));
    s->blen = malloc((size_t)(V + G + 1) * sizeof(float));
    FB_REQUIRE(s->base && s->shift && s->offset && s->ucl && s->vint && s->amain && s->parent && s->blen,
               FB_ERR_ALLOC, "microbiome: no memory for the generator's constants (V=%d)", V);
    fb_rng_key key = {.seed = mb_mix(s->seed ^ TAG_CONST), .step = 0, .site = 0};
    uint64_t n = 0;
    for (int g = 0; g < G; g++) s->base[g] = 0.5f * fb_normal(&key, n++);
    for (int i = 0; i < KC * G; i++) s->shift[i] = 0.7f * fb_normal(&key, n++);
    for (int v = 0; v < V; v++) s->offset[v] = 0.5f * fb_normal(&key, n++);
    for (int g = 0; g < G; g++) s->ucl[g] = fb_normal(&key, n++);
    for (int i = 0; i < KC * G; i++) s->vint[i] = 0.7f * fb_normal(&key, n++);
    for (int i = 0; i < KC; i++) s->amain[i] = 0.5f * fb_normal(&key, n++);
    s->parent[0] = -1;
    s->blen[0] = 0.0f;
    for (int v = 1; v <= V; v++) {
        s->parent[v] = V + 1 + mb_clade(s, v);
        s->blen[v] = 1.0f;
    }
    for (int g = 0; g < G; g++) {
        s->parent[V + 1 + g] = 0;
        s->blen[V + 1 + g] = 1.0f;
    }
    return FB_OK;
}

static fb_status mb_create(model *m, fb_layout *P, fb_layout *A) {
    model_config *c = &m->c;
    const fb_microbiome_data *data = c->microbiome_data;
    if (data) {   // the files decide the token count, vocabulary and categorical columns
        FB_REQUIRE(data->n_total > 0 && data->S > 0 && data->V > 0 && data->K > 0 && data->card > 0, FB_ERR_CONFIG,
                   "microbiome: the dataset is empty (%d samples, %d tokens, %d ASVs, %d columns)", data->n_total,
                   data->S, data->V, data->K);
        c->max_asvs = data->S;
        c->vocab = data->V;
        c->columns = data->K;
        c->card = data->card;
    }
    if (!c->D) c->D = MB_D;
    if (!c->H) c->H = MB_H;
    if (!c->layers) c->layers = MB_LAYERS;
    if (!c->F) c->F = 4 * c->D;
    if (!c->max_asvs) c->max_asvs = MB_MAX_ASVS;
    if (!c->vocab) c->vocab = MB_VOCAB;
    if (!c->columns) c->columns = MB_COLUMNS;
    if (!c->card) c->card = MB_CARD;
    if (!c->cat_dim) c->cat_dim = MB_CAT_DIM;
    FB_REQUIRE(c->B > 0, FB_ERR_SHAPE, "microbiome: batch B=%d must be > 0", c->B);
    FB_REQUIRE(c->D > 0 && c->H > 0 && c->D % c->H == 0, FB_ERR_CONFIG,
               "microbiome: H=%d heads must divide D=%d", c->H, c->D);
    FB_REQUIRE(c->layers > 0 && c->layers <= MB_MAX_LAYERS, FB_ERR_CONFIG, "microbiome: layers=%d outside [1, %d]",
               c->layers, MB_MAX_LAYERS);
    FB_REQUIRE(c->F > 0 && c->max_asvs > 0 && c->vocab > 0 && c->columns > 0 && c->card > 0 && c->cat_dim > 0,
               FB_ERR_SHAPE, "microbiome: sizes F=%d max_asvs=%d vocab=%d columns=%d card=%d cat_dim=%d must be > 0",
               c->F, c->max_asvs, c->vocab, c->columns, c->card, c->cat_dim);
    FB_REQUIRE(c->vocab < (1 << 24) && c->card < (1 << 24), FB_ERR_CONFIG,
               "microbiome: vocab=%d and card=%d must be < 2^24 (ids travel as floats)", c->vocab, c->card);
    FB_REQUIRE(c->dropout >= 0.0f && c->dropout < 1.0f, FB_ERR_CONFIG, "microbiome: dropout %g outside [0, 1)",
               (double)c->dropout);

    mb_self *s = calloc(1, sizeof *s);
    FB_REQUIRE(s, FB_ERR_ALLOC, "microbiome: no memory for the model");
    m->self = s;
    s->B = c->B; s->S = c->max_asvs; s->D = c->D; s->V = c->vocab; s->K = c->columns; s->card = c->card;
    s->E = c->cat_dim; s->G = c->vocab < MB_CLADES ? c->vocab : MB_CLADES;
    s->dropout = c->dropout; s->seed = c->seed;
    s->data = data;
    s->onehot = mb_wants_onehot(m->method);
    const int B = s->B, S = s->S, D = s->D, K = s->K, E = s->E;
    m->in_stride = 2 * S + K;
    m->y_stride = 1 + S;
    m->out_dim = 1 + D;
    m->n_terms = 2;
    m->term_names[0] = "huber";
    m->term_names[1] = "unifrac";
    m->term_pairwise[1] = 1;
    s->amask = calloc((size_t)B * S, 1);
    s->bmask = calloc((size_t)B * K, 1);
    FB_REQUIRE(s->amask && s->bmask, FB_ERR_ALLOC, "microbiome: no memory for masks");
    FB_TRY(mb_constants(s));

    // Parameters and activations, in forward order.
    if (fb_layout_add(P, "asv_embedding", "weight", 2, (int[]){s->V, D}, FB_INIT_NORMAL, 1.0f, &s->emb, &s->demb) < 0)
        return FB_ERR_SHAPE;
    int gi = linear_declare(P, "asv_film.gamma", 1, D, 1, &s->gam, &s->dgam);
    int bi = linear_declare(P, "asv_film.beta", 1, D, 1, &s->bet, &s->dbet);
    if (gi < 0 || bi < 0) return FB_ERR_SHAPE;
    fb_layout_set_init(P, gi, FB_INIT_ZERO, 0.0f);
    fb_layout_set_init(P, gi + 1, FB_INIT_CONST, 1.0f);
    fb_layout_set_init(P, bi + 1, FB_INIT_ZERO, 0.0f);
    if (fb_layout_add(A, "asv_embedding", "h0", 3, (int[]){B, S, D}, FB_INIT_ZERO, 0, &s->h0, &s->dh0) < 0)
        return FB_ERR_SHAPE;
    FB_TRY(encoder_declare(&s->senc, P, A, "sample_encoder", c->layers, TAG_SAMPLE_ENC, s, c->F, c->H));
    FB_TRY(pool_declare(&s->spool, P, A, "sample_pooling", B, S, D));

    s->first_cat = P->count;
    if (!s->onehot) {
        s->catw = calloc((size_t)K, sizeof(float *));
        s->dcatw = calloc((size_t)K, sizeof(float *));
        FB_REQUIRE(s->catw && s->dcatw, FB_ERR_ALLOC, "microbiome: no memory for %d columns", K);
        char pre[FB_NAME_MAX];
        for (int k = 0; k < K; k++) {
            snprintf(pre, sizeof pre, "cat_embedding.%d", k);
            if (fb_layout_add(P, pre, "weight", 2, (int[]){s->card, E}, FB_INIT_NORMAL, 1.0f, &s->catw[k], &s->dcatw[k]) < 0)
                return FB_ERR_SHAPE;
        }
        if (fb_layout_add(A, "categorical", "raw", 3, (int[]){B, K, E}, FB_INIT_ZERO, 0, &s->cat_raw, &s->dcat_raw) < 0 ||
            fb_layout_add(A, "categorical", "tokens", 3, (int[]){B, K, E}, FB_INIT_ZERO, 0, &s->cat, &s->dcat) < 0)
            return FB_ERR_SHAPE;
    } else if (fb_layout_add(A, "categorical", "onehot", 3, (int[]){B, K, s->card + 1}, FB_INIT_ZERO, 0,
                             &s->onehot_b, NULL) < 0) {
        return FB_ERR_SHAPE;
    }

    const fusion_method *fm = m->method;
    const int seq = fm->kind == FUSION_SEQUENCE;
    const int Eb = s->onehot ? s->card + 1 : E;
    fusion_config fc = seq ? fusion_default_config(B, S, K, D, Eb) : fusion_default_config(B, 1, 1, D, K * E);
    fc.prefix = "fusion";
    fc.H = c->H;
    fc.L = 0;            // the method's default latents
    model_fusion_options(c, &fc);
    fc.rng = (fb_rng_key){.seed = c->seed, .step = 0, .site = 0};   // fusion point #0
    if (seq) {
        fc.a_mask = s->amask;
        fc.b_mask = s->bmask;
    }
    if (!seq) {   // the target encoder and pooling come before a vector method
        FB_TRY(encoder_declare(&s->tenc, P, A, "target_encoder", MB_TARGET_LAYERS, TAG_TARGET_ENC, s, c->F, c->H));
        FB_TRY(pool_declare(&s->tpool, P, A, "target_pooling", B, S, D));
    }
    s->first_fusion = P->count;
    fb_status st = fusion_create(&s->fus, fm, &fc, P, A);
    if (st != FB_OK) {
        char err[512];
        snprintf(err, sizeof err, "%s", fb_last_error());
        return fb_fail(st, "microbiome: fusion method %s: %s", fm->name, err);
    }
    s->fus_created = 1;
    FB_TRY(model_add_fusion_point(m, &s->fus, "fusion"));
    s->mode = !seq ? MB_VEC : s->fus.out_positions == 1 ? MB_POOL : MB_SEQ;
    if (s->mode == MB_SEQ) {
        FB_TRY(encoder_declare(&s->tenc, P, A, "target_encoder", MB_TARGET_LAYERS, TAG_TARGET_ENC, s, c->F, c->H));
        FB_TRY(pool_declare(&s->tpool, P, A, "target_pooling", B, S, D));
    }
    const int zrows = s->mode == MB_SEQ ? S : 1;
    if (fb_layout_add(A, "fusion_out", "z", 3, (int[]){B, zrows, D}, FB_INIT_ZERO, 0, &s->z, &s->dz) < 0)
        return FB_ERR_SHAPE;
    fb_layout_tag_module(A, A->count - 1, FB_MODULE_FUSION, 0);
    s->first_head = P->count;
    if (linear_declare(P, "head", D, 1, 1, &s->head, &s->dhead) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, "head", "pred", 2, (int[]){B, 1}, FB_INIT_ZERO, 0, &s->pred, &s->dpred) < 0)
        return FB_ERR_SHAPE;
    fb_layout_tag_module(A, A->count - 1, FB_MODULE_LINEAR, 0);   // the head's output, rows of width 1
    return FB_OK;
}

// ---------------------------------------------------------------------------------------------
// Synthetic data

static int mb_has(const int *ids, int n, int v) {
    for (int t = 0; t < n; t++)
        if (ids[t] == v) return 1;
    return 0;
}

// Sample `index` from the files: dataset sample index mod n_total (the run cycles through them).
// x as the generator's; y = [target, dataset index, 0...] (the loss looks the UniFrac distances up
// by index). A sample this process does not hold gets index -1, which the loss reports.
static void mb_sample_data(const mb_self *s, uint64_t index, float *x, float *y) {
    const fb_microbiome_data *d = s->data;
    const int S = s->S, K = s->K;
    const int64_t k = (int64_t)(index % (uint64_t)d->n_total);
    const int row = fb_microbiome_data_row(d, k);
    memset(y, 0, (size_t)(1 + S) * sizeof(float));
    if (row < 0) {
        memset(x, 0, (size_t)(2 * S + K) * sizeof(float));
        y[1] = -1.0f;
        return;
    }
    for (int t = 0; t < S; t++) {
        x[t] = (float)d->tokens[(size_t)row * S + t];
        x[S + t] = d->log_abund[(size_t)row * S + t];
    }
    for (int j = 0; j < K; j++) x[2 * S + j] = (float)d->cats[(size_t)row * K + j];
    y[0] = d->target[row];
    y[1] = (float)k;
}

static void mb_sample(const model *m, uint64_t index, float *x, float *y) {
    const mb_self *s = m->self;
    if (s->data) {
        mb_sample_data(s, index, x, y);
        return;
    }
    const int S = s->S, V = s->V, K = s->K, card = s->card, G = s->G;
    const uint64_t seed = mb_mix(mb_mix(s->seed ^ TAG_DATA) ^ mb_mix(index));
    const fb_rng_key ku = {.seed = seed, .step = 0, .site = 0};   // uniforms and normals apart
    const fb_rng_key kn = {.seed = seed, .step = 0, .site = 1};
    uint64_t iu = 0, in = 0;
#define UNI() fb_uniform(&ku, iu++)
#define NRM() fb_normal(&kn, in++)
    int cat[K];
    for (int k = 0; k < K; k++) {
        int v = 1 + (int)(UNI() * (float)card);
        cat[k] = v > card ? card : v;
        x[2 * S + k] = UNI() < MB_P_UNKNOWN ? 0.0f : (float)cat[k];
    }
    // Clade logits and their cumulative softmax.
    float lg[G], cdf[G];
    float mx = -INFINITY;
    for (int g = 0; g < G; g++) {
        float v = s->base[g] + 0.5f * NRM();
        for (int k = 0; k < K; k++) v += s->shift[((size_t)k * card + cat[k] - 1) * G + g];
        lg[g] = v;
        if (v > mx) mx = v;
    }
    float tot = 0;
    for (int g = 0; g < G; g++) tot += cdf[g] = expf(lg[g] - mx);
    for (int g = 1; g < G; g++) cdf[g] += cdf[g - 1];
    // Richness and the ASVs.
    const int nmin = S / 4 > 1 ? S / 4 : 1, nmax = S < V ? S : V;
    int n = nmin + (int)(UNI() * (float)(nmax - nmin + 1));
    if (n > nmax) n = nmax;
    int ids[S];
    float w[S];
    for (int t = 0; t < n; t++) {
        int v = 0;
        for (int tries = 0; tries < 64 && !v; tries++) {
            float u = UNI() * tot;
            int g = 0;
            while (g < G - 1 && cdf[g] <= u) g++;
            int lo = (int)(((int64_t)g * V + G - 1) / G) + 1, hi = (int)(((int64_t)(g + 1) * V + G - 1) / G);
            int cand = lo + (int)(UNI() * (float)(hi - lo + 1));
            if (cand > hi) cand = hi;
            if (!mb_has(ids, t, cand)) v = cand;
        }
        for (int cand = 1; !v; cand++)   // a crowded clade: the lowest free ASV
            if (!mb_has(ids, t, cand)) v = cand;
        ids[t] = v;
        w[t] = lg[mb_clade(s, v)] + s->offset[v - 1] + 0.7f * NRM();
    }
    float wmax = -INFINITY, wsum = 0;
    for (int t = 0; t < n; t++) if (w[t] > wmax) wmax = w[t];
    for (int t = 0; t < n; t++) wsum += w[t] = expf(w[t] - wmax);
    const int depth = 500 + (int)(UNI() * 4501.0f);
    int cnt[S];
    float f[G];
    memset(f, 0, sizeof f);
    for (int t = 0; t < n; t++) {
        float p = w[t] / wsum;
        long c = lroundf((float)depth * p);
        cnt[t] = c < 1 ? 1 : (int)c;
        f[mb_clade(s, ids[t])] += p;
    }
    // Sort by count, descending (ties: smaller id first).
    for (int t = 1; t < n; t++)
        for (int u = t; u > 0 && (cnt[u] > cnt[u - 1] || (cnt[u] == cnt[u - 1] && ids[u] < ids[u - 1])); u--) {
            int ti = ids[u]; ids[u] = ids[u - 1]; ids[u - 1] = ti;
            int tc = cnt[u]; cnt[u] = cnt[u - 1]; cnt[u - 1] = tc;
        }
    for (int t = 0; t < S; t++) {
        x[t] = t < n ? (float)ids[t] : 0.0f;
        x[S + t] = t < n ? log1pf((float)cnt[t]) : 0.0f;
        y[1 + t] = x[t];
    }
    float target = 0;
    for (int g = 0; g < G; g++) {
        float r = s->ucl[g];
        for (int k = 0; k < K; k++) r += s->vint[((size_t)k * card + cat[k] - 1) * G + g];
        target += 2.0f * f[g] * r;
    }
    for (int k = 0; k < K; k++) target += s->amain[(size_t)k * card + cat[k] - 1];
    y[0] = target + 0.1f * NRM();
#undef UNI
#undef NRM
}

// ---------------------------------------------------------------------------------------------
// Forward / backward

// Reads ids into the masks; checks the ranges.
static fb_status mb_read_batch(const model *m, const model_batch *b) {
    mb_self *s = m->self;
    const int S = s->S, K = s->K;
    FB_REQUIRE(b->B >= 1 && b->B <= s->B, FB_ERR_SHAPE, "microbiome: batch of %d rows; the model holds at most B=%d",
               b->B, s->B);
    FB_REQUIRE(b->x, FB_ERR_SHAPE, "microbiome: missing inputs");
    for (int i = 0; i < b->B; i++) {
        const float *x = b->x + (size_t)i * m->in_stride;
        for (int t = 0; t < S; t++) {
            float v = x[t];
            FB_REQUIRE(v >= 0.0f && v <= (float)s->V && v == floorf(v), FB_ERR_CONFIG,
                       "microbiome: row %d position %d: ASV id %g outside 0..%d", i, t, (double)v, s->V);
            s->amask[(size_t)i * S + t] = v == 0.0f;
        }
        for (int k = 0; k < K; k++) {
            float v = x[2 * S + k];
            FB_REQUIRE(v >= 0.0f && v <= (float)s->card && v == floorf(v), FB_ERR_CONFIG,
                       "microbiome: row %d column %d: category id %g outside 0..%d", i, k, (double)v, s->card);
            s->bmask[(size_t)i * K + k] = v == 0.0f;
        }
    }
    // Rows past the batch: no padding, no unknowns (the fusion runs on all its rows; see above).
    memset(s->amask + (size_t)b->B * S, 0, (size_t)(s->B - b->B) * S);
    memset(s->bmask + (size_t)b->B * K, 0, (size_t)(s->B - b->B) * K);
    return FB_OK;
}

static const float *mb_fusion_b(const mb_self *s) { return s->onehot ? s->onehot_b : s->cat; }

// Points the fusion at this batch: training flag, step, and its sample 0's global row (the method's
// draws follow the global row; the rows past the batch are zero and draw past it).
static void mb_bind_fusion(mb_self *s, const model_batch *b) {
    s->fus.c.training = b->training;
    s->fus.c.rng.step = b->step;
    s->fus.c.rng.row0 = b->first;
}

// The head Linear(D → 1) as per-row dot products in a fixed order: an SGEMM over B rows may round a
// row differently with another row count (OpenBLAS's tail kernels), and a rank holding rows [k, N)
// must reproduce the one-process rows bit for bit.
static void head_forward(mb_self *s, const float *p, int B) {
    const int D = s->D;
    for (int i = 0; i < B; i++) {
        const float *pi = p + (size_t)i * D;
        float acc = 0.0f;
        for (int d = 0; d < D; d++) acc += s->head.weight[d] * pi[d];
        s->pred[i] = acc + s->head.bias[0];
    }
}

// Accumulates dp (B, D) and the head's gradients from s->dpred.
static void head_backward(mb_self *s, float *dp, const float *p, int B) {
    const int D = s->D;
    for (int i = 0; i < B; i++) {
        const float g = s->dpred[i], *pi = p + (size_t)i * D;
        float *dpi = dp + (size_t)i * D;
        for (int d = 0; d < D; d++) {
            dpi[d] += g * s->head.weight[d];
            s->dhead.weight[d] += g * pi[d];
        }
        s->dhead.bias[0] += g;
    }
}

static fb_status mb_forward(model *m, const model_batch *b, float *out) {
    mb_self *s = m->self;
    FB_TRY(mb_read_batch(m, b));
    const int B = b->B, S = s->S, D = s->D, K = s->K, E = s->E;
    const size_t SD = (size_t)S * D, tail = (size_t)(s->B - B);

    // ASV embedding + log-abundance FiLM.
    for (int i = 0; i < B; i++) {
        const float *x = b->x + (size_t)i * m->in_stride;
        for (int t = 0; t < S; t++) {
            const int id = (int)x[t];
            const float l = x[S + t];
            float *h = s->h0 + i * SD + (size_t)t * D;
            const float *e = id ? s->emb + (size_t)(id - 1) * D : NULL;
            for (int d = 0; d < D; d++) {
                const float g = s->gam.weight[d] * l + s->gam.bias[d], be = s->bet.weight[d] * l + s->bet.bias[d];
                h[d] = (e ? g * e[d] : 0.0f) + be;
            }
        }
    }
    FB_TRY(encoder_forward(&s->senc, s, s->h0, b));
    const float *X = s->senc.y;
    FB_TRY(pool_forward(&s->spool, X, s->amask, B, S, D));

    // Categorical metadata.
    if (s->onehot) {
        const int C1 = s->card + 1;
        memset(s->onehot_b, 0, (size_t)s->B * K * C1 * sizeof(float));
        for (int i = 0; i < B; i++)
            for (int k = 0; k < K; k++)
                s->onehot_b[((size_t)i * K + k) * C1 + (int)b->x[(size_t)i * m->in_stride + 2 * S + k]] = 1.0f;
    } else {
        for (int i = 0; i < B; i++)
            for (int k = 0; k < K; k++) {
                const int id = (int)b->x[(size_t)i * m->in_stride + 2 * S + k];
                float *dst = s->cat_raw + ((size_t)i * K + k) * E;
                if (id) memcpy(dst, s->catw[k] + (size_t)(id - 1) * E, (size_t)E * sizeof(float));
                else memset(dst, 0, (size_t)E * sizeof(float));
            }
        const fb_rng_key key = mb_key(s, TAG_CAT, b);   // a sample's (K, E) block is one row
        FB_TRY(dropout_rows_forward(s->cat, s->cat_raw, (size_t)B, (size_t)K * E, s->dropout, &key, b->training));
        if (tail) memset(s->cat + (size_t)B * K * E, 0, tail * K * E * sizeof(float));
    }
    mb_bind_fusion(s, b);

    // Target path.
    const float *p;
    if (s->mode == MB_VEC) {
        FB_TRY(encoder_forward(&s->tenc, s, X, b));
        FB_TRY(pool_forward(&s->tpool, s->tenc.y, s->amask, B, S, D));
        if (tail) memset(s->tpool.out + (size_t)B * D, 0, tail * D * sizeof(float));
        FB_TRY(fusion_forward(&s->fus, s->z, s->tpool.out, mb_fusion_b(s)));
        p = s->z;
    } else {
        if (tail) memset(s->senc.y + B * SD, 0, tail * SD * sizeof(float));
        FB_TRY(fusion_forward(&s->fus, s->z, X, mb_fusion_b(s)));
        if (s->mode == MB_POOL) {
            p = s->z;
        } else {
            FB_TRY(encoder_forward(&s->tenc, s, s->z, b));
            FB_TRY(pool_forward(&s->tpool, s->tenc.y, s->amask, B, S, D));
            p = s->tpool.out;
        }
    }
    head_forward(s, p, B);
    for (int i = 0; i < B; i++) {
        float *o = out + (size_t)i * m->out_dim;
        o[0] = s->pred[i];
        memcpy(o + 1, s->spool.out + (size_t)i * D, (size_t)D * sizeof(float));
    }
    return FB_OK;
}

// Categorical embeddings: s->dcat through the dropout, into the looked-up rows.
static fb_status categorical_backward(const model *m, const model_batch *b) {
    mb_self *s = m->self;
    if (s->onehot) return FB_OK;
    const int B = b->B, S = s->S, K = s->K, E = s->E;
    const size_t n = (size_t)B * K * E;
    memset(s->dcat_raw, 0, n * sizeof(float));
    const fb_rng_key key = mb_key(s, TAG_CAT, b);
    FB_TRY(dropout_rows_backward(s->dcat_raw, s->dcat, (size_t)B, (size_t)K * E, s->dropout, &key, b->training));
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++) {
            const int id = (int)b->x[(size_t)i * m->in_stride + 2 * S + k];
            if (!id) continue;
            const float *g = s->dcat_raw + ((size_t)i * K + k) * E;
            float *dw = s->dcatw[k] + (size_t)(id - 1) * E;
            for (int j = 0; j < E; j++) dw[j] += g[j];
        }
    return FB_OK;
}

static fb_status mb_backward(model *m, const model_batch *b, const float *dout) {
    mb_self *s = m->self;
    const int B = b->B, S = s->S, D = s->D, K = s->K, E = s->E;
    const size_t SD = (size_t)S * D, nH = (size_t)s->B * SD;
    FB_REQUIRE(B >= 1 && B <= s->B && dout, FB_ERR_SHAPE, "microbiome: backward of %d rows (at most %d) needs dout",
               B, s->B);
    for (int i = 0; i < B; i++) {
        const float *g = dout + (size_t)i * m->out_dim;
        s->dpred[i] = g[0];
        memcpy(s->spool.dout + (size_t)i * D, g + 1, (size_t)D * sizeof(float));
    }
    const float *X = s->senc.y;
    float *dX = s->senc.dy;
    memset(dX, 0, nH * sizeof(float));
    if (!s->onehot) memset(s->dcat, 0, (size_t)s->B * K * E * sizeof(float));
    float *db = s->onehot ? NULL : s->dcat;
    mb_bind_fusion(s, b);

    if (s->mode == MB_SEQ) {
        memset(s->tpool.dout, 0, (size_t)B * D * sizeof(float));
        head_backward(s, s->tpool.dout, s->tpool.out, B);
        model_grads_ready(m, s->first_head);
        memset(s->tenc.dy, 0, (size_t)B * SD * sizeof(float));
        FB_TRY(pool_backward(&s->tpool, s->tenc.dy, s->tenc.y, s->amask, B, S, D));
        model_grads_ready(m, s->tpool.first_param);
        memset(s->dz, 0, nH * sizeof(float));
        FB_TRY(encoder_backward(&s->tenc, m, s->dz, s->z, b));
        FB_TRY(fusion_backward(&s->fus, dX, db, s->dz, X, mb_fusion_b(s)));
        model_grads_ready(m, s->first_fusion);
    } else {
        memset(s->dz, 0, (size_t)s->B * D * sizeof(float));
        const float *p = s->z;
        head_backward(s, s->dz, p, B);
        model_grads_ready(m, s->first_head);
        if (s->mode == MB_POOL) {
            FB_TRY(fusion_backward(&s->fus, dX, db, s->dz, X, mb_fusion_b(s)));
            model_grads_ready(m, s->first_fusion);
        } else {
            memset(s->tpool.dout, 0, (size_t)s->B * D * sizeof(float));
            FB_TRY(fusion_backward(&s->fus, s->tpool.dout, db, s->dz, s->tpool.out, mb_fusion_b(s)));
            model_grads_ready(m, s->first_fusion);
            memset(s->tenc.dy, 0, (size_t)B * SD * sizeof(float));
            FB_TRY(pool_backward(&s->tpool, s->tenc.dy, s->tenc.y, s->amask, B, S, D));
            model_grads_ready(m, s->tpool.first_param);
            FB_TRY(encoder_backward(&s->tenc, m, dX, X, b));
        }
    }
    // The categorical embeddings (declared after the sample path) are done next, so the sample
    // path's buckets can go as soon as its layers finish.
    FB_TRY(categorical_backward(m, b));
    model_grads_ready(m, s->first_cat);
    FB_TRY(pool_backward(&s->spool, dX, X, s->amask, B, S, D));
    model_grads_ready(m, s->spool.first_param);
    memset(s->dh0, 0, (size_t)B * SD * sizeof(float));
    FB_TRY(encoder_backward(&s->senc, m, s->dh0, s->h0, b));

    // Embedding + FiLM: rows in order, so every accumulation has a fixed order.
    for (int i = 0; i < B; i++) {
        const float *x = b->x + (size_t)i * m->in_stride;
        for (int t = 0; t < S; t++) {
            const int id = (int)x[t];
            const float l = x[S + t];
            const float *dh = s->dh0 + i * SD + (size_t)t * D;
            if (id) {
                const float *e = s->emb + (size_t)(id - 1) * D;
                float *de = s->demb + (size_t)(id - 1) * D;
                for (int d = 0; d < D; d++) {
                    const float g = s->gam.weight[d] * l + s->gam.bias[d];
                    de[d] += dh[d] * g;
                    s->dgam.weight[d] += dh[d] * e[d] * l;
                    s->dgam.bias[d] += dh[d] * e[d];
                }
            }
            for (int d = 0; d < D; d++) {
                s->dbet.weight[d] += dh[d] * l;
                s->dbet.bias[d] += dh[d];
            }
        }
    }
    return FB_OK;
}

// ---------------------------------------------------------------------------------------------
// Loss

// T (N, N) upper triangle, from the files' UniFrac matrix: the pairs (i < j, same block of k rows)
// the loss reads for rows [r0, r1) — those with an end in the range. Each held sample carries its
// row of distances to every sample, so a pair needs one held end (the range's rows are this
// process's own: DDP's rank rows, or every row on DataParallel's rank 0).
static fb_status mb_data_distances(const fb_microbiome_data *d, const float *y, int ys, int N, int k, int r0, int r1,
                                   float *T) {
    for (int i = 0; i < N; i++) {
        const float ki = y[(size_t)i * ys + 1];
        FB_REQUIRE(ki >= 0.0f, FB_ERR_CONFIG,
                   "microbiome loss: row %d holds a sample this rank did not load (a dataset/batch mismatch)", i);
        const int row_i = fb_microbiome_data_row(d, (int64_t)ki);
        for (int j = i + 1; j < (i / k + 1) * k; j++) {
            if (!((i >= r0 && i < r1) || (j >= r0 && j < r1))) continue;
            const float kj = y[(size_t)j * ys + 1];
            const int row_j = kj >= 0.0f ? fb_microbiome_data_row(d, (int64_t)kj) : -1;
            FB_REQUIRE(row_i >= 0 || row_j >= 0, FB_ERR_CONFIG,
                       "microbiome loss: UniFrac distance of samples %.0f and %.0f: neither is loaded here", (double)ki,
                       (double)kj);
            T[(size_t)i * N + j] = row_i >= 0 ? d->unifrac[(size_t)row_i * d->n_total + (size_t)kj]
                                              : d->unifrac[(size_t)row_j * d->n_total + (size_t)ki];
        }
    }
    return FB_OK;
}

static fb_status mb_loss(const model *m, const float *out, const float *y, int N, int r0, int r1, int pair_block,
                         double *terms, float *dout_rows) {
    const mb_self *s = m->self;
    const int D = s->D, S = s->S, od = m->out_dim, ys = m->y_stride, rows = r1 - r0;
    FB_REQUIRE(N >= 1 && 0 <= r0 && r0 <= r1 && r1 <= N, FB_ERR_SHAPE,
               "microbiome loss: rows [%d, %d) of N=%d", r0, r1, N);
    FB_REQUIRE(out && y && terms, FB_ERR_SHAPE, "microbiome loss: missing out, y or terms");
    FB_REQUIRE(pair_block >= 0 && (pair_block == 0 || N % pair_block == 0), FB_ERR_SHAPE,
               "microbiome loss: pair block %d must be 0 or divide N=%d", pair_block, N);
    const int n_nodes = s->V + s->G + 1;
    float *pred = malloc((size_t)N * sizeof(float)), *tgt = malloc((size_t)N * sizeof(float));
    float *dpred = calloc((size_t)N, sizeof(float)), *e = malloc((size_t)N * D * sizeof(float));
    float *T = calloc((size_t)N * N, sizeof(float)), *de = calloc((size_t)(rows ? rows : 1) * D, sizeof(float));
    int *leaves = malloc((size_t)N * S * sizeof(int)), *nleaves = malloc((size_t)N * sizeof(int));
    int *list = malloc((size_t)n_nodes * sizeof(int));
    unsigned char *mark = calloc((size_t)n_nodes, 1);
    fb_status st = FB_OK;
    if (!pred || !tgt || !dpred || !e || !T || !de || !leaves || !nleaves || !list || !mark) {
        st = fb_fail(FB_ERR_ALLOC, "microbiome loss: no memory for N=%d rows", N);
        goto done;
    }
    for (int i = 0; i < N; i++) {
        pred[i] = out[(size_t)i * od];
        tgt[i] = y[(size_t)i * ys];
        memcpy(e + (size_t)i * D, out + (size_t)i * od + 1, (size_t)D * sizeof(float));
        if (s->data) continue;   // y[1] is the dataset index (mb_data_distances)
        int c = 0;
        for (int t = 0; t < S; t++) {
            float v = y[(size_t)i * ys + 1 + t];
            if (!(v >= 0.0f && v <= (float)s->V && v == floorf(v))) {
                st = fb_fail(FB_ERR_CONFIG, "microbiome loss: row %d of y: ASV id %g outside 0..%d", i, (double)v, s->V);
                goto done;
            }
            if (v > 0.0f) leaves[(size_t)i * S + c++] = (int)v;
        }
        nleaves[i] = c;
    }
    // Huber: the gradient from all N rows (bitwise the same rows whatever the range), the term from
    // this range's rows.
    if ((st = huber_loss(NULL, dpred, pred, tgt, (size_t)N, MB_HUBER_DELTA, 1.0f)) != FB_OK) goto done;
    terms[0] = 0.0;
    if (rows > 0) {
        double l;
        if ((st = huber_loss(&l, NULL, pred + r0, tgt + r0, (size_t)rows, MB_HUBER_DELTA, 1.0f)) != FB_OK) goto done;
        terms[0] = l * (double)rows / (double)N;
    }
    // UniFrac targets of the counted pairs.
    const int k = pair_block ? pair_block : N;
    if (s->data) {
        if ((st = mb_data_distances(s->data, y, ys, N, k, r0, r1, T)) != FB_OK) goto done;
    } else {
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < (i / k + 1) * k; j++)
                T[(size_t)i * N + j] = (float)microbiome_unifrac(s->parent, s->blen, n_nodes, leaves + (size_t)i * S,
                                                                 nleaves[i], leaves + (size_t)j * S, nleaves[j], mark,
                                                                 list);
    }
    if ((st = unifrac_pairwise_loss(&terms[1], rows ? de : NULL, e, T, N, D, pair_block, r0, r1, 1.0f)) != FB_OK)
        goto done;
    if (dout_rows)
        for (int i = r0; i < r1; i++) {
            float *g = dout_rows + (size_t)(i - r0) * od;
            g[0] = dpred[i];
            memcpy(g + 1, de + (size_t)(i - r0) * D, (size_t)D * sizeof(float));
        }
done:
    free(pred); free(tgt); free(dpred); free(e); free(T); free(de); free(leaves); free(nleaves); free(list); free(mark);
    return st;
}

const scenario scenario_microbiome = {
    .name = "microbiome",
    .default_method = "categorical_concat",
    .record_layout = "x = [ASV ids (max_asvs; 0 = padding) | log(1 + count) (max_asvs) | category ids (columns; "
                     "0 = unknown)]; y = [target, ASV ids (max_asvs)] (the synthetic world), or [target, dataset "
                     "index, 0...] (data from files)",
    .source = "003",
    .description = "ASV tokens (embedding + log-abundance FiLM) -> pre-norm sample transformer -> attention pooling "
                   "(UniFrac embedding); categorical metadata fused on the target path -> target encoder -> "
                   "attention pooling -> head; Huber + UniFrac pairwise loss",
    .fits = mb_fits,
    .create = mb_create,
    .sample = mb_sample,
    .forward = mb_forward,
    .backward = mb_backward,
    .loss = mb_loss,
    .destroy = mb_destroy,
};
