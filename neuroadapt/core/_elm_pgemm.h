/* Small float32 matrix products of the ELM memory loop with the weight packed once per loop
 * (included by _elm_kernels.c when the flags give AVX2 and FMA; used by _elm_scan.h).
 *
 * Each step of the loop multiplies a (B x K) block of activations by a fixed (K x N) weight
 * (B = 32, K, N = 100 / 200 at the bench's shape).  The BLAS routine repacks the weight on every
 * call; here it is laid out once per loop as panels of 16 columns, pk[(jb K + k) 16 + j] =
 * W(k, 16 jb + j) (zero past N), and a register-blocked kernel keeps an MR x 16 block of C
 * (MR <= 6) in 2 MR eight-float registers while it runs over k: one broadcast of A and two
 * multiply-adds per row and k.  Summation order: ascending k, one fused multiply-add per term.
 */
#include <immintrin.h>

/* pack W(k, n) = src[k sk + n sn] (k < K, n < N) into 16-column panels; NULL if out of memory */
static float *pack16_f32(long K, long N, const float *src, long sk, long sn) {
    const long nb = (N + 15) / 16;
    float *dst = malloc(sizeof(float) * (size_t)(nb * K * 16));
    if (!dst) return NULL;
    for (long jb = 0; jb < nb; ++jb)
        for (long k = 0; k < K; ++k)
            for (long j = 0; j < 16; ++j) {
                const long n = jb * 16 + j;
                dst[(jb * K + k) * 16 + j] = n < N ? src[k * sk + n * sn] : 0.f;
            }
    return dst;
}

/* the rows of a block as named variables (with an array GCC keeps the block on the stack) */
#define PK_REP1(X) X(0)
#define PK_REP2(X) PK_REP1(X) X(1)
#define PK_REP3(X) PK_REP2(X) X(2)
#define PK_REP4(X) PK_REP3(X) X(3)
#define PK_REP5(X) PK_REP4(X) X(4)
#define PK_REP6(X) PK_REP5(X) X(5)
#define PK_DECL(r) __m256 c##r##a = _mm256_setzero_ps(), c##r##b = _mm256_setzero_ps();
#define PK_FMA(r)                                                                           \
    a = _mm256_broadcast_ss(A + (r) * lda + k);                                            \
    c##r##a = _mm256_fmadd_ps(a, wa, c##r##a);                                              \
    c##r##b = _mm256_fmadd_ps(a, wb, c##r##b);
#define PK_STORE(r) _mm256_storeu_ps(C + (r) * ldc, c##r##a); _mm256_storeu_ps(C + (r) * ldc + 8, c##r##b);
#define PK_TAIL(r)                                                                          \
    _mm256_storeu_ps(t, c##r##a); _mm256_storeu_ps(t + 8, c##r##b);                         \
    memcpy(C + (r) * ldc, t, sizeof(float) * (size_t)nc);

/* C (MR x nc) = A (MR rows, stride lda) @ one K x 16 panel P; nc < 16 only in the last panel */
#define PK_KERNEL(MR)                                                                       \
static inline void pkern##MR##_f32(long K, const float *restrict A, long lda, const float *restrict P, \
                                   float *restrict C, long ldc, long nc) {                  \
    PK_REP##MR(PK_DECL)                                                                     \
    for (long k = 0; k < K; ++k) {                                                          \
        const __m256 wa = _mm256_loadu_ps(P + k * 16), wb = _mm256_loadu_ps(P + k * 16 + 8); \
        __m256 a;                                                                           \
        PK_REP##MR(PK_FMA)                                                                  \
    }                                                                                       \
    if (nc == 16) {                                                                         \
        PK_REP##MR(PK_STORE)                                                                \
    } else {                                                                                \
        float t[16];                                                                        \
        PK_REP##MR(PK_TAIL)                                                                 \
    }                                                                                       \
}
PK_KERNEL(1)
PK_KERNEL(2)
PK_KERNEL(3)
PK_KERNEL(4)
PK_KERNEL(5)
PK_KERNEL(6)

/* C (M x N, row-major, ldc) = A (M x K, row-major, lda) @ the packed (K x N) weight pk */
static void pgemm_f32(long M, long N, long K, const float *A, long lda, const float *pk, float *C, long ldc) {
    for (long jb = 0; jb * 16 < N; ++jb) {
        const float *P = pk + jb * K * 16;
        const long nc = N - jb * 16 < 16 ? N - jb * 16 : 16;
        long i = 0;
        for (; i + 6 <= M; i += 6) pkern6_f32(K, A + i * lda, lda, P, C + i * ldc + jb * 16, ldc, nc);
        const float *a = A + i * lda;
        float *c = C + i * ldc + jb * 16;
        switch (M - i) {
            case 5: pkern5_f32(K, a, lda, P, c, ldc, nc); break;
            case 4: pkern4_f32(K, a, lda, P, c, ldc, nc); break;
            case 3: pkern3_f32(K, a, lda, P, c, ldc, nc); break;
            case 2: pkern2_f32(K, a, lda, P, c, ldc, nc); break;
            case 1: pkern1_f32(K, a, lda, P, c, ldc, nc); break;
            default: break;
        }
    }
}
