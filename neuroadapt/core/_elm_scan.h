/* The ELM memory recurrence, forward and backward, for one element type: included twice by
 * _elm_kernels.c with T = float / double (SUF = f32 / f64, GEMM = the BLAS routine's type).
 * Equations and the torch version of the same loop: neuroadapt/core/elm_scan.py.
 *
 *   z_t = zin_t + m_{t-1} W_rec^T;  h_t = act(z_t);  o_t = h_t W_out^T + b_out
 *   s_t = sigma(2B o_t)   (so A tanh(B o_t) = A (2 s_t - 1))
 *   m_t = kappa m_{t-1} + gain A (2 s_t - 1)
 *
 * The matrix products are the BLAS ?gemm_ torch itself uses (its address comes from Python), or
 * for float32 with AVX2 + FMA the packed-weight kernel of _elm_pgemm.h (the weights are fixed for
 * the whole loop, so they are packed once instead of on every call); everything element-wise of
 * one step runs in one pass in C, so a step costs two matrix products and two short loops, with
 * no Python or torch dispatch in between.
 */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUF)

/* exp for moderate arguments: 2^k p(r), r = x - k ln2, Taylor polynomial of degree DEG;
 * written with plain arithmetic so the compiler vectorises the loops that call it */
static inline T FN(vexp)(T x) {
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    const T kf = x * (T)1.4426950408889634 + MAGIC;   /* round(x / ln2) in the low bits */
    const T k = kf - MAGIC;
    const T r = (x - k * (T)LN2_HI) - k * (T)LN2_LO;
    T p = (T)IF_7;                                  /* Horner, coefficients 1 / i! */
#if DEG == 13
    p = (T)IF_13;
    p = p * r + (T)IF_12; p = p * r + (T)IF_11; p = p * r + (T)IF_10; p = p * r + (T)IF_9;
    p = p * r + (T)IF_8; p = p * r + (T)IF_7;
#endif
    p = p * r + (T)IF_6; p = p * r + (T)IF_5; p = p * r + (T)IF_4; p = p * r + (T)IF_3;
    p = p * r + (T)IF_2; p = p * r + (T)IF_1; p = p * r + (T)IF_0;
    union { T f; UINT u; } a, s;
    a.f = kf;
    s.u = (UINT)((a.u - MAGIC_BITS) + BIAS) << MANT;
    return p * s.f;
}

static inline T FN(sigm)(T x) { return (T)1 / ((T)1 + FN(vexp)(-x)); }

/* row-major C (m x n) = alpha op(A) op(B) + beta C, through the column-major BLAS routine */
static void FN(mm)(void *gemm, char ta, char tb, long m, long n, long k, T alpha, const T *A, long lda,
                   const T *Bm, long ldb, T beta, T *C, long ldc) {
    /* 64-bit slots: an LP64 BLAS reads the low half (little-endian), an ILP64 one all of it */
    long long M_ = n, N_ = m, K_ = k, la = ldb, lb = lda, lc = ldc;
    ((GEMM)gemm)(&tb, &ta, &M_, &N_, &K_, &alpha, Bm, &la, A, &lb, &beta, C, &lc, 1, 1);
}

/* The loop's products with a fixed weight, C (m x n) = A (m x k) op(W).  For float32 where the
 * flags give AVX2 and FMA (PK_FLOAT) W is packed once per loop for pgemm_f32 (_elm_pgemm.h) unless
 * elm_set_packed(0) was called or the buffer could not be allocated; otherwise the BLAS routine. */
typedef struct { const T *w; char t; long ld; float *pk; } FN(wop);

/* op(W) is k x n: W is (n x k) for t = 'T', (k x n) for t = 'N', rows ld apart */
static FN(wop) FN(wop_make)(const T *w, char t, long k, long n, long ld) {
    FN(wop) o = {w, t, ld, NULL};
#if PK_FLOAT
    if (elm_packed_on) o.pk = t == 'T' ? pack16_f32(k, n, w, 1, ld) : pack16_f32(k, n, w, ld, 1);
#else
    (void)k; (void)n;
#endif
    return o;
}

static void FN(wmul)(void *gemm, const FN(wop) *o, long m, long n, long k, const T *A, long lda, T *C, long ldc) {
#if PK_FLOAT
    if (o->pk) { pgemm_f32(m, n, k, A, lda, o->pk, C, ldc); return; }
#endif
    FN(mm)(gemm, 'N', o->t, m, n, k, 1, A, lda, o->w, o->ld, 0, C, ldc);
}

/* one batch row of the forward step's output half: s = sigma(2B (p + b_out)), m = kappa mp + g A (2s - 1) */
static inline void FN(fwd_row)(long D, const T *restrict p, const T *restrict b_out, const T *restrict kappa,
                               const T *restrict gain, const T *restrict mp, T *restrict s, T *restrict m) {
    for (long d = 0; d < D; ++d) {
        const T sg = FN(sigm)((T)(2 * TANH_B) * (p[d] + b_out[d]));
        s[d] = sg;
        m[d] = kappa[d] * mp[d] + gain[d] * ((T)TANH_A * (2 * sg - 1));
    }
}

/* one batch row of the backward step: total dL/dm_t, dL/do_t and the per-unit sums */
static inline void FN(bwd_row)(long D, const T *restrict gm, const T *restrict kappa, const T *restrict gn,
                               const T *restrict pn, const T *restrict s, const T *restrict gain,
                               const T *restrict mp, T *restrict gc, T *restrict o, double *restrict d_kappa,
                               double *restrict d_gain, double *restrict d_bout) {
    for (long d = 0; d < D; ++d) {
        const T g = (gm[d] + kappa[d] * gn[d]) + pn[d];
        const T sg = s[d];
        const T dd = g * (gain[d] * (T)(4 * TANH_A * TANH_B) * (sg * (1 - sg)));
        gc[d] = g;
        o[d] = dd;
        d_kappa[d] += g * mp[d];
        d_gain[d] += g * ((T)TANH_A * (2 * sg - 1));
        d_bout[d] += dd;
    }
}

/* act: 0 relu, 1 silu, 2 tanh.  Z (pre-activations) is written only when non-NULL (silu needs it). */
/* the input half of z_t, a linear trace: a_t = ks a_{t-1} + u_t (a_{-1} = a0), zin_t = a_t + b1;
 * writes zin_t to zi and, when A is non-NULL, a_t to A.  ks = 0, a0 = b1 = 0 give zin_t = u_t. */
static inline void FN(trace_row)(long n, T ks, const T *restrict u, const T *restrict ap, const T *restrict b1,
                                 T *restrict a, T *restrict zi) {
    for (long i = 0; i < n; ++i) { const T v = ks * ap[i] + u[i]; a[i] = v; zi[i] = v + b1[i]; }
}

/* act: 0 relu, 1 silu, 2 tanh.  Z (pre-activations) is written only when non-NULL (silu needs it);
 * A (the traces a_t) only when non-NULL.  Scratch: P (B x max(H, D)), W (3 B H). */
void FN(elm_scan_fwd)(void *gemm, long Tn, long B, long H, long D, int act, const T *u, const T *a0,
                      const T *ks_p, const T *b1, const T *m0, const T *w_rec, const T *w_out, const T *b_out,
                      const T *kappa, const T *gain, T *A, T *Z, T *Hb, T *S, T *M, T *P, T *W) {
    const long BH = B * H, BD = B * D;
    const T ks = *ks_p;
    T *zi = W, *a_cur = W + BH, *a_prev = W + 2 * BH;
    memcpy(a_prev, a0, sizeof(T) * (size_t)BH);
    FN(wop) wr = FN(wop_make)(w_rec, 'T', D, H, D), wo = FN(wop_make)(w_out, 'T', H, D, H);
    for (long t = 0; t < Tn; ++t) {
        const T *mp = t ? M + (t - 1) * BD : m0;
        T *h = Hb + t * BH;
        for (long b = 0; b < B; ++b)
            FN(trace_row)(H, ks, u + t * BH + b * H, a_prev + b * H, b1, a_cur + b * H, zi + b * H);
        if (A) memcpy(A + t * BH, a_cur, sizeof(T) * (size_t)BH);
        { T *tmp = a_prev; a_prev = a_cur; a_cur = tmp; }
        FN(wmul)(gemm, &wr, B, H, D, mp, D, P, H);
        if (act == 0) {
            for (long i = 0; i < BH; ++i) { const T z = zi[i] + P[i]; h[i] = z > 0 ? z : 0; }
        } else if (act == 1) {
            T *zt = Z + t * BH;
            for (long i = 0; i < BH; ++i) { const T z = zi[i] + P[i]; zt[i] = z; h[i] = z * FN(sigm)(z); }
        } else {
            for (long i = 0; i < BH; ++i) { const T z = zi[i] + P[i]; h[i] = 2 * FN(sigm)(2 * z) - 1; }
        }
        FN(wmul)(gemm, &wo, B, D, H, h, H, P, D);
        T *s = S + t * BD, *m = M + t * BD;
        for (long b = 0; b < B; ++b)
            FN(fwd_row)(D, P + b * D, b_out, kappa, gain, mp + b * D, s + b * D, m + b * D);
    }
    free(wr.pk);
    free(wo.pk);
}

/* the trace's reverse scan for one batch row: du_t = dz_t + ks du_{t+1}; sums dL/db1 and, with
 * ap = a_{t-1} non-NULL, dL/dks */
static inline double FN(trace_back_row)(long n, T ks, const T *restrict dz, const T *restrict dun,
                                        const T *restrict ap, T *restrict du, double *restrict d_b1) {
    double acc = 0;
    for (long i = 0; i < n; ++i) {
        du[i] = dz[i] + ks * dun[i];
        d_b1[i] += dz[i];
    }
    if (ap)
        for (long i = 0; i < n; ++i) acc += (double)du[i] * ap[i];
    return acc;
}

/* gM: dL/dm_t from outside (T, B, D).  Writes dZ (dL/dz_t, T x B x H), dO (dL/do_t, T x B x D),
 * d_m0, and the sums over t and b of d_kappa, d_gain, d_bout (D each; overwritten).  With dU
 * non-NULL also the trace's gradients: dU (dL/du_t), d_a0, d_b1 (H), *d_ks (needs A, else 0).
 * Scratch: P (B x max(H, D)), G (2 B D). */
int FN(elm_scan_bwd)(void *gemm, long Tn, long B, long H, long D, int act, const T *gM, const T *m0,
                      const T *w_rec, const T *w_out, const T *kappa, const T *gain, const T *Z,
                      const T *Hb, const T *S, const T *M, T *dZ, T *dO, T *d_m0, T *d_kappa,
                      T *d_gain, T *d_bout, T *P, T *G, const T *ks_p, const T *a0, const T *A,
                      T *dU, T *d_a0, T *d_b1, T *d_ks) {
    const long BH = B * H, BD = B * D;
    T *g_cur = G, *g_next = G + BD;
    const T ks = dU ? *ks_p : 0;
    /* the sums over all T B terms accumulate in double (float32 running sums of 8000 terms lose digits) */
    double ks_acc = 0, *acc = calloc((size_t)(3 * D + H), sizeof(double));
    if (!acc) return -1;
    double *a_kappa = acc, *a_gain = acc + D, *a_bout = acc + 2 * D, *a_b1 = acc + 3 * D;
    memset(g_next, 0, sizeof(T) * (size_t)BD);   /* nothing flows back from beyond the last step */
    memset(P, 0, sizeof(T) * (size_t)BD);
    FN(wop) wr = FN(wop_make)(w_rec, 'N', H, D, D), wo = FN(wop_make)(w_out, 'N', D, H, H);
    for (long t = Tn - 1; t >= 0; --t) {
        if (t < Tn - 1)  /* W_rec^T dz_{t+1} */
            FN(wmul)(gemm, &wr, B, D, H, dZ + (t + 1) * BH, H, P, D);
        for (long b = 0; b < B; ++b) {
            const long j = t * BD + b * D;
            FN(bwd_row)(D, gM + j, kappa, g_next + b * D, P + b * D, S + j, gain, t ? M + j - BD : m0 + b * D,
                        g_cur + b * D, dO + j, a_kappa, a_gain, a_bout);
        }
        T *o = dO + t * BD;
        FN(wmul)(gemm, &wo, B, H, D, o, D, P, H);
        const T *h = Hb + t * BH;
        T *dz = dZ + t * BH;
        if (act == 0) {
            for (long i = 0; i < BH; ++i) dz[i] = h[i] > 0 ? P[i] : 0;
        } else if (act == 1) {
            const T *z = Z + t * BH;
            for (long i = 0; i < BH; ++i) {
                const T sg = FN(sigm)(z[i]);
                dz[i] = P[i] * (sg * (1 + z[i] * (1 - sg)));
            }
        } else {
            for (long i = 0; i < BH; ++i) dz[i] = P[i] * (1 - h[i] * h[i]);
        }
        if (dU) {
            for (long b = 0; b < B; ++b) {
                const long j = t * BH + b * H;
                const T *ap = A ? (t ? A + j - BH : a0 + b * H) : 0;
                /* beyond the last step du is 0: read dZ's own row with factor ks * 0 */
                const T *dun = t < Tn - 1 ? dU + j + BH : dZ + j;
                ks_acc += FN(trace_back_row)(H, t < Tn - 1 ? ks : 0, dZ + j, dun, ap, dU + j, a_b1);
            }
        }
        T *tmp = g_cur; g_cur = g_next; g_next = tmp;
    }
    for (long d = 0; d < D; ++d) { d_kappa[d] = (T)a_kappa[d]; d_gain[d] = (T)a_gain[d]; d_bout[d] = (T)a_bout[d]; }
    if (dU) {
        for (long i = 0; i < BH; ++i) d_a0[i] = ks * dU[i];
        for (long h = 0; h < H; ++h) d_b1[h] = (T)a_b1[h];
        *d_ks = (T)ks_acc;
    }
    free(acc);
    /* dL/dm_0 = kappa g_0 + W_rec^T dz_0 */
    FN(wmul)(gemm, &wr, B, D, H, dZ, H, P, D);
    free(wr.pk);
    free(wo.pk);
    for (long b = 0; b < B; ++b)
        for (long d = 0; d < D; ++d) d_m0[b * D + d] = kappa[d] * g_next[b * D + d] + P[b * D + d];
    return 0;
}

#undef CAT_
#undef CAT
#undef FN
