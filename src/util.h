/*
 * util.h -- the bottom floor: errors and messages, allocation, compiler macros, the
 * floating-point control register. Every module may include it; it includes nothing of the library
 * but the public header.
 */
#ifndef BP_UTIL_H
#define BP_UTIL_H

#include "backprop.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Errors
 * ----------------------------------------------------------------------------------------*/

#define BP__ERR_CAP 256

#if defined(__GNUC__) || defined(__clang__)
#define BP__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BP__LIKELY(x)    __builtin_expect(!!(x), 1)
#define BP__UNLIKELY(x)  __builtin_expect(!!(x), 0)
#else
#define BP__PRINTF(f, a)
#define BP__LIKELY(x)   (x)
#define BP__UNLIKELY(x) (x)
#endif

/* Hot elementwise kernels (optimizer updates, fused activations, gradient scans): compiled
 * for AVX-512, AVX2 and the portable baseline and picked once at load time (GCC function
 * multi-versioning; needs ifunc, i.e. ELF/glibc on x86-64). The library itself is built
 * without -march. ISO C mode (-std=c11) keeps floating-point contraction off, so no version
 * fuses a multiply-add and all of them compute bit-identical results. Define BP_NO_CLONES
 * to build the baseline only. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && defined(__x86_64__) &&            \
    defined(__ELF__) && defined(__linux__) && !defined(BP_NO_CLONES)
#define BP__KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BP__KERNEL
#endif

/* Single-row kernels for narrow layers (layer_dense.c, BP__NARROW_WIDTH): the same source as the
 * multi-versioned kernels, compiled without the vectoriser. A vectorised loop over 2-4
 * elements spends more instructions choosing its path than computing; the results are the
 * same either way (elementwise operations in the same order, no contraction). */
#if defined(__GNUC__) && !defined(__clang__)
#define BP__SCALAR __attribute__((optimize("no-tree-vectorize")))
#else
#define BP__SCALAR
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BP__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define BP__ALWAYS_INLINE inline
#endif

/* Largest |v| over @p count floats as a bit pattern: with the sign cleared, IEEE floats
 * order like their bit patterns as unsigned integers, and every NaN/Inf pattern is >= that
 * of Inf (0x7f800000). An integer max vectorises where fabsf/isfinite did not. */
static BP__ALWAYS_INLINE uint32_t bp__max_abs_bits(const float *v, size_t count)
{
    uint32_t m = 0;
    for (size_t k = 0; k < count; k++) {
        uint32_t u;
        memcpy(&u, v + k, sizeof u);
        u &= 0x7fffffffu;
        m = u > m ? u : m;
    }
    return m;
}

/* Rows narrower than this many floats (one AVX-512 vector) are "narrow": vector prologues
 * and epilogues cost more than they save over 1-15 elements, so their single-row kernels run
 * scalar (the dense layer picks them, layer_dense.c), the sigmoid takes libm's expf (a
 * shorter dependency chain than the vector polynomial, activation.c), and finite checks of
 * so few floats scan inline (bp__max_abs_bits_short: walk.c, loss.h). The one place this
 * threshold is written. */
#define BP__NARROW_WIDTH 16

/* bp__max_abs_bits for a few floats (rows of tiny layers): the same result (any pattern at
 * or above 0x7f800000 stands for "NaN or Inf"), stopping at the first non-finite value. The
 * early exit keeps the vectoriser away: over 1-15 floats its prologue and epilogue cost more
 * than the loop. */
static BP__ALWAYS_INLINE uint32_t bp__max_abs_bits_short(const float *v, size_t count)
{
    uint32_t m = 0;
    for (size_t k = 0; k < count; k++) {
        uint32_t u;
        memcpy(&u, v + k, sizeof u);
        u &= 0x7fffffffu;
        if (u >= 0x7f800000u) return u;
        m = u > m ? u : m;
    }
    return m;
}

/* Flush denormals to zero during the library's own compute (subnormal Adam moments and
 * activations are slow to compute with): bp__fp_enter() sets the SSE control register's
 * FTZ and DAZ bits and returns the caller's register, bp__fp_leave() puts the caller's two
 * bits back (exception flags raised meanwhile are kept). Used by every entry point that
 * runs kernels (train_step, compute_grads, forward, backward, predict, optimizer step).
 * When the caller already runs with both bits set, neither writes the register. */
#if (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))) && !defined(BP_NO_FTZ)
#include <xmmintrin.h>
#define BP__FTZ_DAZ 0x8040u
static inline unsigned bp__fp_enter(void)
{
    const unsigned csr = _mm_getcsr();
    if ((csr & BP__FTZ_DAZ) != BP__FTZ_DAZ) _mm_setcsr(csr | BP__FTZ_DAZ);
    return csr;
}
static inline void bp__fp_leave(unsigned csr)
{
    if ((csr & BP__FTZ_DAZ) != BP__FTZ_DAZ)
        _mm_setcsr((_mm_getcsr() & ~BP__FTZ_DAZ) | (csr & BP__FTZ_DAZ));
}
/* Set the calling thread's FTZ and DAZ bits to those of @p csr (a register value another
 * thread read); returns this thread's register for a later bp__fp_adopt() to restore. */
static inline unsigned bp__fp_adopt(unsigned csr)
{
    const unsigned mine = _mm_getcsr();
    if ((mine & BP__FTZ_DAZ) != (csr & BP__FTZ_DAZ))
        _mm_setcsr((mine & ~BP__FTZ_DAZ) | (csr & BP__FTZ_DAZ));
    return mine;
}
static inline unsigned bp__fp_get(void)
{
    return _mm_getcsr();
}
#else
static inline unsigned bp__fp_enter(void)
{
    return 0;
}
static inline void bp__fp_leave(unsigned csr)
{
    (void)csr;
}
static inline unsigned bp__fp_adopt(unsigned csr)
{
    return csr;
}
static inline unsigned bp__fp_get(void)
{
    return 0;
}
#endif

/* Record a failure: formats the message into @p err (a handle's BP__ERR_CAP buffer, or NULL
 * when there is no handle) and into the thread's bp_last_error(); returns @p status. */
bp_status bp__fail(char *err, bp_status status, const char *fmt, ...) BP__PRINTF(3, 4);
/* Is @p status one of enum bp_status's error values (not BP_OK, not an unknown int)? For the
 * statuses a caller's callback returns (gradient hook, source callbacks). */
int bp__status_is_error(int status);

/* Forward a non-OK status unchanged. */
#define BP_CHECK(expr)                                                                             \
    do {                                                                                           \
        const bp_status bp_check_s_ = (expr);                                                      \
        if (bp_check_s_ != BP_OK) return bp_check_s_;                                              \
    } while (0)

/* The one handle check of every public entry point: fail with BP_ERR_INVALID_ARG, the message
 * "<fn>: invalid <kind> handle" in bp_last_error() only (there is no valid handle to hold it),
 * unless @p valid. */
#define BP__CHECK_HANDLE(valid, kind, fn)                                                          \
    do {                                                                                           \
        if (!(valid))                                                                              \
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid " kind " handle", fn);          \
    } while (0)

/* Static message for invalid handles passed to *_last_error(). */
extern const char bp__invalid_handle_msg[];

/* ------------------------------------------------------------------------------------------
 * Allocation (per handle; never a global hook)
 * ----------------------------------------------------------------------------------------*/

typedef struct bp__alloc {
    bp_alloc_fn alloc;
    bp_free_fn free;
    void *user;
} bp__alloc;

/* Default allocator: malloc/free. */
extern const bp__alloc bp__default_alloc;

void *bp__malloc(const bp__alloc *a, size_t size);
void *bp__calloc(const bp__alloc *a, size_t count, size_t size); /* overflow-checked */
void bp__free(const bp__alloc *a, void *p);
/* 64-byte aligned blocks for kernel buffers; freed with bp__free_aligned. */
void *bp__malloc_aligned(const bp__alloc *a, size_t size);
void bp__free_aligned(const bp__alloc *a, void *p);
/* a * b without overflow: returns 0 and sets *out, or -1 on overflow. */
int bp__mul_size(size_t a, size_t b, size_t *out);

/* Is every element of v finite? Returns the index of the first non-finite one or count. */
size_t bp__first_nonfinite(const float *v, size_t count);
/* Largest |v| over @p count floats (0 for none), or INFINITY if any is NaN or Inf: one
 * vectorised read (bp__max_abs_bits, multi-versioned). */
float bp__max_abs(const float *v, size_t count);

/* CRC-32 (IEEE 802.3, zlib's crc32): continue @p crc (0 to start) over @p size bytes. */
uint32_t bp__crc32(uint32_t crc, const void *data, size_t size);

#endif /* BP_UTIL_H */
