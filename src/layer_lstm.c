/* layer_lstm.c -- long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's nn.LSTM:
 *
 *   i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     gates in this order: i, f, g, o
 *   f = sigmoid(W_if x + b_if + W_hf h + b_hf)
 *   g = tanh   (W_ig x + b_ig + W_hg h + b_hg)
 *   o = sigmoid(W_io x + b_io + W_ho h + b_ho)
 *   c' = f c + i g,   h' = o tanh(c')
 *
 * Backward of one step, from dh' (the output's and the later step's) and dc' (the later
 * step's): dc = dc' + dh' o (1 - tanh^2 c'), do = dh' tanh c', di = dc g, dg = dc i,
 * df = dc c, dc_prev = dc f; each gate's pre-activation gradient through its own derivative
 * (s (1 - s) for the sigmoids, 1 - g^2 for tanh). The loop over the time steps, the GEMMs and
 * persistence are recurrent.c's. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "recurrent.h"

#include "act_math.h"

/* Gates fused: one pass per row over H units computes the four gates, c' and h'. Each gate
 * block has its own pointer (a[H + j] through one pointer keeps GCC from vectorising). */
static BP__ALWAYS_INLINE void
lstm_row(size_t H, float *restrict ai, float *restrict af, float *restrict ag, float *restrict ao,
         const float *restrict hi, const float *restrict hf, const float *restrict hg,
         const float *restrict ho_, const float *restrict bi, const float *restrict bh,
         const float *restrict cp, float *restrict co, float *restrict tc, float *restrict ho)
{
    for (size_t j = 0; j < H; j++) {
        const float ig = bp__sigmoidf((ai[j] + bi[j]) + (hi[j] + bh[j]));
        const float fg = bp__sigmoidf((af[j] + bi[H + j]) + (hf[j] + bh[H + j]));
        const float gg = bp__tanhf((ag[j] + bi[2 * H + j]) + (hg[j] + bh[2 * H + j]));
        const float og = bp__sigmoidf((ao[j] + bi[3 * H + j]) + (ho_[j] + bh[3 * H + j]));
        const float c = fg * cp[j] + ig * gg;
        const float t = bp__tanhf(c);
        ai[j] = ig;
        af[j] = fg;
        ag[j] = gg;
        ao[j] = og;
        co[j] = c;
        tc[j] = t;
        ho[j] = og * t;
    }
}

BP__KERNEL
static void lstm_step(const bp__rstep *s)
{
    const size_t H = s->H;
    for (size_t r = 0; r < s->n; r++) {
        float *a = s->a + r * s->sa;
        const float *hh = s->hh + r * 4 * H;
        lstm_row(H, a, a + H, a + 2 * H, a + 3 * H, hh, hh + H, hh + 2 * H, hh + 3 * H, s->b_ih,
                 s->b_hh, s->c_prev + r * s->sc, s->c_out + r * s->sco, s->aux + r * s->sx,
                 s->h_out + r * s->sho);
    }
}

static BP__ALWAYS_INLINE void
lstm_row_back(size_t H, const float *restrict ai, const float *restrict af,
              const float *restrict ag, const float *restrict ao, const float *restrict cp,
              const float *restrict tc, const float *restrict dh, float *restrict dc,
              float *restrict di, float *restrict df, float *restrict dg, float *restrict dO)
{
    for (size_t j = 0; j < H; j++) {
        const float ig = ai[j], fg = af[j], gg = ag[j], og = ao[j];
        const float t = tc[j], d = dh[j];
        const float dct = dc[j] + d * og * (1.0f - t * t);
        di[j] = dct * gg * (ig * (1.0f - ig));
        df[j] = dct * cp[j] * (fg * (1.0f - fg));
        dg[j] = dct * ig * (1.0f - gg * gg);
        dO[j] = d * t * (og * (1.0f - og));
        dc[j] = dct * fg;
    }
}

BP__KERNEL
static int lstm_step_back(const bp__rstep_back *s)
{
    const size_t H = s->H;
    for (size_t r = 0; r < s->n; r++) {
        const float *a = s->a + r * s->sa;
        float *dz = s->dz + r * s->sz;
        lstm_row_back(H, a, a + H, a + 2 * H, a + 3 * H, s->c_prev + r * s->sc, s->aux + r * s->sx,
                      s->dh + r * H, s->dc + r * H, dz, dz + H, dz + 2 * H, dz + 3 * H);
    }
    return 0;
}

static const bp__cell lstm_cell = {
    .vt = &bp__lstm_vtable,
    .fn = "bp_net_add_lstm",
    .gates = 4,
    .carries = 2,
    .aux = 1,
    .split_dzh = 0,
    .forward = lstm_step,
    .backward = lstm_step_back,
};

bp_status bp_net_add_lstm(bp_net *net, size_t hidden, int flags)
{
    return bp__rec_add(net, &lstm_cell, hidden, BP_ACT_TANH, flags);
}

static bp_status lstm_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    return bp__rec_construct(net, &lstm_cell, hp, count, expect);
}

const bp__layer_vtable bp__lstm_vtable = BP__REC_VTABLE(BP_LAYER_LSTM, "lstm", lstm_construct);
