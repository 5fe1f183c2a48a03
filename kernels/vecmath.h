// Vectorised transcendental functions (exp, tanh, sigmoid, the erf behind GELU), shared by the
// element-wise kernels and by the inline scalar forms in activations.h.
//
// One body, two instances: the functions below are written once (the second half of this file,
// included twice) over a type VT that is either `float` (prefix fbs_) or an FB_VL-lane vector of
// floats (prefix fbv_, GCC/Clang vector extension). The body uses only operations that are exactly
// rounded per lane in IEEE arithmetic (+, -, *, /, fma), bit manipulation and selects, in the same
// order in both instances, so a lane of the vector form is bit-for-bit the scalar form of that
// element: an array kernel may run any element through either, on any thread, and fused loops that
// call the scalar form agree with the array kernels. (The build is -std=c11, so the compiler never
// contracts a*b+c into an fma by itself; every fma here is explicit.)
//
// Accuracy, measured over every float input against double-precision libm (ulp of the result;
// 0.5 would be correctly rounded):
//   exp      1.0 ulp                   sigmoid  2.4 ulp (results >= FLT_MIN; below it 0 or subnormal)
//   tanh     1.3 ulp                   gelu     5.9 ulp (|gelu| >= 1e-30; the worst case is in the
//   gelu'    3.9 ulp of the larger of its two terms      negative tail, x near -1.3)
// The methods are Cephes-style: range reduction plus a polynomial. exp: x = n ln2 + r with
// |r| <= ln2/2 (Cody-Waite two-constant ln2), exp(r) = 1 + r + r^2 P(r), times 2^n with a single
// rounding (vscalefps, or two exact power-of-two factors), so results round once also into the
// subnormals. tanh: x + x^3 P(x^2) below 0.625, else 1 - 2 / (exp(2|x|) + 1). GELU's erf:
// erf(z) = z + z P(z^2) for |x| < 1.25 (z = x / sqrt 2); above, erfc(|z|) = exp(-x^2/2) Q(t) with
// t = 1 / (1 + |x| / 4) and x^2/2 carried exactly (fma remainder), so 1 + erf(z) keeps its relative
// accuracy far into the negative tail (no 1 + erf cancellation, unlike 1 + erff(z)).
// Coefficients of P (erf) and Q: least squares on Chebyshev nodes in relative error, each rounded
// to float before the next was refitted; exp and tanh: Cephes.
//
// Vector width FB_VL follows the target (16 with AVX-512F, 8 with AVX, else 4), so a vector never
// outgrows the registers (no -Wpsabi ABI changes); nothing computed here depends on the width.
// Without FMA hardware fma is libm's fmaf (exact, slow); results stay the same.
#ifndef FB_VECMATH_H
#define FB_VECMATH_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define FB_VL 16
#elif defined(__AVX__)
#define FB_VL 8
#else
#define FB_VL 4
#endif

typedef float fb_vf __attribute__((vector_size(4 * FB_VL)));
typedef uint32_t fb_vu __attribute__((vector_size(4 * FB_VL)));
typedef int32_t fb_vi __attribute__((vector_size(4 * FB_VL)));

#define FB_VM_INLINE static inline __attribute__((always_inline))

// ---- scalar primitives ----
// min(a, b) = a < b ? a : b and max(a, b) = a > b ? a : b exactly as written (the x86 min/max
// semantics: with a constant a, a NaN b passes through), sel(m, a, b) = m ? a : b.
FB_VM_INLINE float fbs_fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
FB_VM_INLINE uint32_t fbs_bits(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
FB_VM_INLINE float fbs_from(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }
FB_VM_INLINE int fbs_lt(float a, float b) { return a < b; }
FB_VM_INLINE float fbs_sel(int m, float a, float b) { return m ? a : b; }
FB_VM_INLINE float fbs_min(float a, float b) { return a < b ? a : b; }
FB_VM_INLINE float fbs_max(float a, float b) { return a > b ? a : b; }
FB_VM_INLINE float fbs_k(float c) { return c; }
// y 2^n for y in [0.5, 2) (or NaN) and integer n in [-150, 128], t = n + 1.5 * 2^23 (whose bits
// hold n): two exact power-of-two factors, so only the last multiply rounds (into the subnormals
// or to infinity as the exact product would) — the value AVX-512's vscalefps gives in one step.
FB_VM_INLINE float fbs_scale2n(float y, float n, float t) {
    (void)n;
    const uint32_t ni = fbs_bits(t) - 0x4B400000u, n1 = (uint32_t)((int32_t)ni >> 1), n2 = ni - n1;
    return y * fbs_from((n1 + 127u) << 23) * fbs_from((n2 + 127u) << 23);
}

// ---- vector primitives ----
#if defined(__AVX512F__)
typedef __mmask16 fb_vm;
#else
typedef fb_vu fb_vm;
#endif
FB_VM_INLINE fb_vf fbv_fma(fb_vf a, fb_vf b, fb_vf c) {
#if defined(__AVX512F__)
    return (fb_vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__AVX__) && defined(__FMA__)
    return (fb_vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    fb_vf r;
    for (int k = 0; k < FB_VL; k++) r[k] = __builtin_fmaf(a[k], b[k], c[k]);
    return r;
#endif
}
FB_VM_INLINE fb_vu fbv_bits(fb_vf x) { return (fb_vu)x; }
FB_VM_INLINE fb_vf fbv_from(fb_vu u) { return (fb_vf)u; }
FB_VM_INLINE fb_vm fbv_lt(fb_vf a, fb_vf b) {
#if defined(__AVX512F__)
    return _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_LT_OQ);
#else
    return (fb_vu)(a < b);
#endif
}
FB_VM_INLINE fb_vf fbv_sel(fb_vm m, fb_vf a, fb_vf b) {
#if defined(__AVX512F__)
    return (fb_vf)_mm512_mask_blend_ps(m, (__m512)b, (__m512)a);
#else
    return (fb_vf)((m & (fb_vu)a) | (~m & (fb_vu)b));
#endif
}
FB_VM_INLINE fb_vf fbv_min(fb_vf a, fb_vf b) {
#if defined(__AVX512F__)
    return (fb_vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
    return (fb_vf)_mm256_min_ps((__m256)a, (__m256)b);
#else
    return fbv_sel(fbv_lt(a, b), a, b);
#endif
}
FB_VM_INLINE fb_vf fbv_max(fb_vf a, fb_vf b) {
#if defined(__AVX512F__)
    return (fb_vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
    return (fb_vf)_mm256_max_ps((__m256)a, (__m256)b);
#else
    return fbv_sel(fbv_lt(b, a), a, b);
#endif
}
FB_VM_INLINE fb_vf fbv_k(float c) { return (fb_vf){0} + c; }
FB_VM_INLINE fb_vf fbv_scale2n(fb_vf y, fb_vf n, fb_vf t) {
#if defined(__AVX512F__)
    (void)t;
    return (fb_vf)_mm512_scalef_ps((__m512)y, (__m512)n);
#else
    (void)n;
    const fb_vu ni = (fb_vu)t - 0x4B400000u, n1 = (fb_vu)((fb_vi)ni >> 1), n2 = ni - n1;
    return y * (fb_vf)((n1 + 127u) << 23) * (fb_vf)((n2 + 127u) << 23);
#endif
}

// Loads and stores: whole vectors (unaligned), and the first n < FB_VL lanes (other lanes `pad`).
FB_VM_INLINE fb_vf fbv_load(const float *p) { fb_vf v; memcpy(&v, p, sizeof v); return v; }
FB_VM_INLINE void fbv_store(float *p, fb_vf v) { memcpy(p, &v, sizeof v); }
FB_VM_INLINE fb_vf fbv_loadn(const float *p, size_t n, float pad) {
#if defined(__AVX512F__)
    return (fb_vf)_mm512_mask_loadu_ps(_mm512_set1_ps(pad), (__mmask16)((1u << n) - 1u), p);
#else
    fb_vf v = fbv_k(pad);
    for (size_t k = 0; k < n; k++) v[k] = p[k];
    return v;
#endif
}
FB_VM_INLINE void fbv_storen(float *p, fb_vf v, size_t n) {
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
#else
    for (size_t k = 0; k < n; k++) p[k] = v[k];
#endif
}

// Sums of rows in 32 fixed lanes (four 8-float accumulators: whole blocks of 32 go to vectors
// 0..3, then up to three whole 8-blocks to vectors 0, 1, 2, then the zero-padded last n % 8 to
// vector 3), combined in a fixed order: the result depends on neither the vector width nor the
// thread count. (The pattern of softmax.c's and layernorm.c's row sums.)
typedef float fb_v8 __attribute__((vector_size(32)));
// *v = x[0 .. n), lanes >= n set to pad (fb_v8_loadn: 0, so they add nothing to a sum)
FB_VM_INLINE void fb_v8_loadn_pad(fb_v8 *v, const float *x, int n, float pad) {
    if (n == 8) {
        memcpy(v, x, sizeof *v);
        return;
    }
    for (int k = 0; k < 8; k++) (*v)[k] = k < n ? x[k] : pad;
}
FB_VM_INLINE void fb_v8_loadn(fb_v8 *v, const float *x, int n) { fb_v8_loadn_pad(v, x, n, 0.0f); }
FB_VM_INLINE float fb_v8_total(const fb_v8 a[4]) {
    fb_v8 v = (a[0] + a[1]) + (a[2] + a[3]);
    float t[8];
    memcpy(t, &v, sizeof t);
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}
#define FB_V8_LANES(C, STEP)                                                      \
    do {                                                                          \
        int j_ = 0;                                                               \
        for (; j_ + 32 <= (C); j_ += 32)                                          \
            for (int u_ = 0; u_ < 4; u_++) STEP(u_, j_ + 8 * u_, 8);              \
        for (int u_ = 0; j_ + 8 <= (C); u_++, j_ += 8) STEP(u_, j_, 8);          \
        if (j_ < (C)) STEP(3, j_, (C) - j_);                                      \
    } while (0)
// sum_j x[j], j < n
FB_VM_INLINE float fb_row_sum(const float *restrict x, int n) {
    fb_v8 a[4] = {{0}};
#define FB_V8_STEP(u, j, m) do { fb_v8 v; fb_v8_loadn(&v, x + (j), (m)); a[u] += v; } while (0)
    FB_V8_LANES(n, FB_V8_STEP);
#undef FB_V8_STEP
    return fb_v8_total(a);
}
// sum_j x[j] y[j], j < n
FB_VM_INLINE float fb_row_dot(const float *restrict x, const float *restrict y, int n) {
    fb_v8 a[4] = {{0}};
#define FB_V8_STEP(u, j, m) do { fb_v8 v, w; fb_v8_loadn(&v, x + (j), (m)); fb_v8_loadn(&w, y + (j), (m)); a[u] += v * w; } while (0)
    FB_V8_LANES(n, FB_V8_STEP);
#undef FB_V8_STEP
    return fb_v8_total(a);
}

// ---- the two instances ----
#define FB_VM_T float
#define FB_VM_U uint32_t
#define FB_VM_M int
#define FB_VM(name) fbs_##name
#include "vecmath.h"
#undef FB_VM_T
#undef FB_VM_U
#undef FB_VM_M
#undef FB_VM
#define FB_VM_T fb_vf
#define FB_VM_U fb_vu
#define FB_VM_M fb_vm
#define FB_VM(name) fbv_##name
#include "vecmath.h"
#undef FB_VM_T
#undef FB_VM_U
#undef FB_VM_M
#undef FB_VM

// Element-wise map over arrays: out[i] = FN(in[i]) for i in [begin, end), whole vectors then one
// padded vector (the padded lanes are computed and dropped).
#define FB_VM_MAP(out, in, begin, end, FN)                                        \
    do {                                                                          \
        size_t i_ = (begin);                                                      \
        for (; i_ + FB_VL <= (end); i_ += FB_VL)                                  \
            fbv_store((out) + i_, FN(fbv_load((in) + i_)));                       \
        if (i_ < (end))                                                           \
            fbv_storen((out) + i_, FN(fbv_loadn((in) + i_, (end) - i_, 0.0f)), (end) - i_); \
    } while (0)

#elif defined(FB_VM_T)   // ---- body, instantiated above for VT = float and VT = fb_vf ----
#define VT FB_VM_T
#define VU FB_VM_U
#define VK(c) FB_VM(k)(c)

// exp(x): <= 1 ulp; overflow to +inf above ~88.72, subnormal results below -87.3, 0 below -103.97,
// NaN stays NaN.
FB_VM_INLINE VT FB_VM(exp)(VT x) {
    x = FB_VM(max)(VK(-104.0f), FB_VM(min)(VK(88.8f), x));   // a NaN x passes through
    // t = n + 1.5 * 2^23 with n = round(x / ln2): the magic constant makes the add round to an integer
    const VT t = FB_VM(fma)(x, VK(1.44269504088896341f), VK(12582912.0f));
    const VT n = t - VK(12582912.0f);
    VT r = FB_VM(fma)(n, VK(-0.693359375f), x);                // ln2 = 0.693359375 - 2.12194440e-4
    r = FB_VM(fma)(n, VK(2.12194440e-4f), r);
    VT p = VK(1.9875691500e-4f);
    p = FB_VM(fma)(p, r, VK(1.3981999507e-3f));
    p = FB_VM(fma)(p, r, VK(8.3334519073e-3f));
    p = FB_VM(fma)(p, r, VK(4.1665795894e-2f));
    p = FB_VM(fma)(p, r, VK(1.6666665459e-1f));
    p = FB_VM(fma)(p, r, VK(5.0000001201e-1f));
    const VT y = FB_VM(fma)(p, r * r, r) + VK(1.0f);
    return FB_VM(scale2n)(y, n, t);
}

// 1 / (1 + exp(-x))
FB_VM_INLINE VT FB_VM(sigmoid)(VT x) { return VK(1.0f) / (VK(1.0f) + FB_VM(exp)(-x)); }

// tanh(x): odd polynomial below |x| = 0.625, else 1 - 2 / (exp(2|x|) + 1) with x's sign.
FB_VM_INLINE VT FB_VM(tanh)(VT x) {
    const VU sign = FB_VM(bits)(x) & 0x80000000u;
    const VT a = FB_VM(from)(FB_VM(bits)(x) ^ sign);
    const VT z = x * x;
    VT p = VK(-5.70498872745e-3f);
    p = FB_VM(fma)(p, z, VK(2.06390887954e-2f));
    p = FB_VM(fma)(p, z, VK(-5.37397155531e-2f));
    p = FB_VM(fma)(p, z, VK(1.33314422036e-1f));
    p = FB_VM(fma)(p, z, VK(-3.33332819422e-1f));
    const VT small = FB_VM(fma)(p * z, x, x);
    const VT e = FB_VM(exp)(a + a);                           // +inf for large |x|: 2 / inf = 0
    const VT big = VK(1.0f) - VK(2.0f) / (e + VK(1.0f));
    return FB_VM(sel)(FB_VM(lt)(a, VK(0.625f)), small, FB_VM(from)(FB_VM(bits)(big) | sign));
}

// 1 + erf(x / sqrt 2) (= 2 Phi(x)) and exp(-x^2 / 2), the two pieces of GELU and its derivative.
// x is clamped to +-20 (beyond it both are exact to float: 0 or 2, and 0).
FB_VM_INLINE VT FB_VM(gelu_parts)(VT x, VT *gauss) {
    x = FB_VM(max)(VK(-20.0f), FB_VM(min)(VK(20.0f), x));
    const VT hx = VK(0.5f) * x;
    const VT s = hx * x;                                      // s + ds = x^2 / 2 = z^2 exactly
    const VT ds = FB_VM(fma)(hx, x, -s);
    const VT ax = FB_VM(from)(FB_VM(bits)(x) & 0x7FFFFFFFu);
    // |x| < 1.25: erf(z) = z + z P(z^2), z = x / sqrt 2
    const VT z = x * VK(0.707106781186547524f);
    VT p = VK(0x1.618b8c0p-14f);
    p = FB_VM(fma)(p, s, VK(-0x1.ab5fac0p-11f));
    p = FB_VM(fma)(p, s, VK(0x1.54de540p-8f));
    p = FB_VM(fma)(p, s, VK(-0x1.b80f8a0p-6f));
    p = FB_VM(fma)(p, s, VK(0x1.ce2dfe0p-4f));
    p = FB_VM(fma)(p, s, VK(-0x1.8127420p-2f));
    p = FB_VM(fma)(p, s, VK(0x1.06eba80p-3f));
    const VT small = VK(1.0f) + FB_VM(fma)(z, p, z);
    // exp(-x^2 / 2), the fma remainder ds folded in to first order
    VT g = FB_VM(exp)(-s);
    g = FB_VM(fma)(-g, ds, g);
    *gauss = g;
    // |x| >= 1.25: erfc(|x| / sqrt 2) = exp(-x^2 / 2) Q(t), t = 1 / (1 + |x| / 4) (in x itself, so
    // the rounding of x / sqrt 2 does not enter)
    const VT t = VK(1.0f) / FB_VM(fma)(ax, VK(0.25f), VK(1.0f));
    VT q = VK(-0x1.853cc00p-4f);
    q = FB_VM(fma)(q, t, VK(0x1.c872300p-3f));
    q = FB_VM(fma)(q, t, VK(-0x1.93d1a00p-5f));
    q = FB_VM(fma)(q, t, VK(0x1.7d5c3a0p-3f));
    q = FB_VM(fma)(q, t, VK(0x1.2e5eec0p-3f));
    q = FB_VM(fma)(q, t, VK(0x1.82117e0p-3f));
    q = FB_VM(fma)(q, t, VK(0x1.98b8400p-3f));
    q = FB_VM(fma)(q, t, VK(0x1.986f800p-3f));
    q = FB_VM(fma)(q, t, VK(0x1.76b9260p-19f));
    const VT erfc = g * q;
    const VT pos = VK(2.0f) - erfc;                           // x >= 1.25: 1 + erf = 2 - erfc
    const VT tail = FB_VM(sel)(FB_VM(lt)(x, VK(0.0f)), erfc, pos);  // x <= -1.25: 1 + erf = erfc
    return FB_VM(sel)(FB_VM(lt)(ax, VK(1.25f)), small, tail);
}

// GELU, exact (erf) form: x/2 (1 + erf(x / sqrt 2)).
FB_VM_INLINE VT FB_VM(gelu)(VT x) {
    VT g;
    return (VK(0.5f) * x) * FB_VM(gelu_parts)(x, &g);
}
// d/dx GELU = (1 + erf(x / sqrt 2)) / 2 + x exp(-x^2 / 2) / sqrt(2 pi)
FB_VM_INLINE VT FB_VM(gelu_grad)(VT x) {
    VT g;
    const VT phi2 = FB_VM(gelu_parts)(x, &g);
    return FB_VM(fma)(x * VK(0.398942280401432678f), g, VK(0.5f) * phi2);
}

#undef VT
#undef VU
#undef VK
#endif
