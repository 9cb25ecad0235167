/* neuroadapt fused LIF time scans (forward + the reverse scan of the backward pass).
 *
 * Compiled on first use by neuroadapt/core/_ckernel.py with the system C compiler and
 * loaded through ctypes; no Python or torch headers, so it builds in well under a second.
 *
 * Layout: time-major, x[t * M + j] with M = batch * neurons; per-neuron parameters
 * beta[n], thr[n] with n = j % N.  Arithmetic is written in the same order as snnTorch's
 * eager code (beta * mem, + input, - reset * threshold) and must be compiled with
 * -ffp-contract=off so that no fused multiply-add changes the rounding: spikes are then
 * bit-identical to snnTorch's.
 *
 * mode: 0 = subtract       m = b*m + x - r*thr
 *       1 = zero (Leaky)   m = b*((1-r)*m) + x       (previous membrane zeroed)
 *       2 = zero (Synaptic) m = (b*m + x) - r*(b*m + x)
 *       3 = none           m = b*m + x
 * with r = (m_prev > thr) the reset signal of snnTorch's delayed reset.
 */
#include <stddef.h>

#define DEFINE_FORWARD(NAME, REAL)                                                   \
void NAME(const REAL *x, const REAL *mem0, const REAL *beta, const REAL *thr,       \
          REAL *mem, REAL *spk, long T, long M, long N, int mode)                   \
{                                                                                   \
    for (long t = 0; t < T; ++t) {                                                  \
        const REAL *prev = (t == 0) ? mem0 : mem + (t - 1) * M;                     \
        const REAL *xt = x + t * M;                                                 \
        REAL *out = mem + t * M;                                                    \
        REAL *st = spk + t * M;                                                     \
        for (long j = 0, n = 0; j < M; ++j, n = (n + 1 == N) ? 0 : n + 1) {         \
            REAL m = prev[j];                                                       \
            REAL r = (m - thr[n] > (REAL)0) ? (REAL)1 : (REAL)0;                    \
            REAL v;                                                                 \
            switch (mode) {                                                         \
            case 0: v = beta[n] * m; v = v + xt[j]; v = v - r * thr[n]; break;     \
            case 1: v = ((REAL)1 - r) * m; v = beta[n] * v; v = v + xt[j]; break;  \
            case 2: v = beta[n] * m; v = v + xt[j]; v = v - v * r; break;          \
            default: v = beta[n] * m; v = v + xt[j]; break;                         \
            }                                                                       \
            out[j] = v;                                                             \
            st[j] = (v - thr[n] > (REAL)0) ? (REAL)1 : (REAL)0;                     \
        }                                                                           \
    }                                                                               \
}

/* Reverse scan of the backward pass: G[t] = c[t] + a[t+1] * G[t+1], with
 * a[t] = beta (modes 0, 3) or beta * (1 - r[t]) (modes 1, 2), r[t] = (m[t-1] > thr).
 * G is dL/dm[t] (total).  The direct gradient reaching m[t] is
 *     c[t] = gspk[t] * S'(m[t] - thr) + gmem[t]
 * with the surrogate derivative S' computed here for surr = 1 (atan, p = alpha:
 * p/2 / (1 + (pi/2 p u)^2)) or surr = 2 (fast sigmoid, p = slope: 1 / (p|u| + 1)^2);
 * surr = 0 means gspk already holds S' * gspk.  gspk or gmem may be NULL (no gradient). */
#define DEFINE_BACKWARD(NAME, REAL)                                                  \
static inline REAL NAME##_c(const REAL *gspk, const REAL *gmem, REAL m, REAL th,    \
                            long i, int surr, REAL p)                               \
{                                                                                   \
    REAL c = gmem ? gmem[i] : (REAL)0;                                              \
    if (gspk) {                                                                     \
        REAL u = m - th, d;                                                         \
        if (surr == 1) { REAL z = (REAL)1.5707963267948966 * p * u;                 \
                         d = (p / (REAL)2) / ((REAL)1 + z * z); }                   \
        else if (surr == 2) { REAL z = p * (u < 0 ? -u : u) + (REAL)1;              \
                              d = (REAL)1 / (z * z); }                              \
        else d = (REAL)1;                                                           \
        c += gspk[i] * d;                                                           \
    }                                                                               \
    return c;                                                                       \
}                                                                                   \
void NAME(const REAL *gspk, const REAL *gmem, const REAL *mem, const REAL *beta,    \
          const REAL *thr, REAL *G, long T, long M, long N, int mode, int surr,     \
          double param)                                                             \
{                                                                                   \
    REAL p = (REAL)param;                                                           \
    if (T <= 0) return;                                                             \
    {                                                                               \
        long base = (T - 1) * M;                                                    \
        for (long j = 0, n = 0; j < M; ++j, n = (n + 1 == N) ? 0 : n + 1)           \
            G[base + j] = NAME##_c(gspk, gmem, mem[base + j], thr[n], base + j, surr, p); \
    }                                                                               \
    for (long t = T - 2; t >= 0; --t) {                                             \
        const REAL *mt = mem + t * M;          /* m[t] decides r[t+1] */            \
        const REAL *gn = G + (t + 1) * M;                                           \
        REAL *gt = G + t * M;                                                       \
        long base = t * M;                                                          \
        for (long j = 0, n = 0; j < M; ++j, n = (n + 1 == N) ? 0 : n + 1) {         \
            REAL a = beta[n];                                                       \
            if ((mode == 1 || mode == 2) && mt[j] - thr[n] > (REAL)0) a = (REAL)0;  \
            gt[j] = NAME##_c(gspk, gmem, mt[j], thr[n], base + j, surr, p) + a * gn[j]; \
        }                                                                           \
    }                                                                               \
}

/* First-order linear filter (synaptic current, leaky integrator readout):
 * y[t] = a * y[t-1] + x[t], y[-1] = y0.  Its backward is the same filter run in reverse. */
#define DEFINE_LINEAR(NAME, REAL)                                                    \
void NAME(const REAL *x, const REAL *y0, const REAL *a, REAL *y, long T, long M,    \
          long N, int reverse)                                                      \
{                                                                                   \
    if (!reverse) {                                                                 \
        for (long t = 0; t < T; ++t) {                                              \
            const REAL *prev = (t == 0) ? y0 : y + (t - 1) * M;                     \
            for (long j = 0, n = 0; j < M; ++j, n = (n + 1 == N) ? 0 : n + 1) {     \
                REAL v = a[n] * prev[j];                                        \
                y[t * M + j] = v + x[t * M + j];                                    \
            }                                                                       \
        }                                                                           \
    } else {                                                                        \
        for (long t = T - 1; t >= 0; --t) {                                         \
            for (long j = 0, n = 0; j < M; ++j, n = (n + 1 == N) ? 0 : n + 1) {     \
                REAL v = (t == T - 1) ? (REAL)0 : a[n] * y[(t + 1) * M + j];    \
                y[t * M + j] = v + x[t * M + j];                                    \
            }                                                                       \
        }                                                                           \
    }                                                                               \
}

DEFINE_FORWARD(lif_forward_f32, float)
DEFINE_FORWARD(lif_forward_f64, double)
DEFINE_BACKWARD(lif_backward_f32, float)
DEFINE_BACKWARD(lif_backward_f64, double)
DEFINE_LINEAR(linear_scan_f32, float)
DEFINE_LINEAR(linear_scan_f64, double)
