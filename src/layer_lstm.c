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

/* Gates fused: one pass per row over H units computes the four gates, c' and h'. */
BP__KERNEL
static void lstm_step(const bp__rstep *s)
{
    const size_t H = s->H;
    const float *restrict bi = s->b_ih, *restrict bh = s->b_hh;
    for (size_t r = 0; r < s->n; r++) {
        float *restrict a = s->a + r * s->sa;
        const float *restrict hh = s->hh + r * 4 * H;
        const float *restrict cp = s->c_prev + r * s->sc;
        float *restrict co = s->c_out + r * s->sco;
        float *restrict ho = s->h_out + r * s->sho;
        float *restrict tc = s->aux + r * s->sx;
        for (size_t j = 0; j < H; j++) {
            const float ig = bp__sigmoidf((a[j] + bi[j]) + (hh[j] + bh[j]));
            const float fg = bp__sigmoidf((a[H + j] + bi[H + j]) + (hh[H + j] + bh[H + j]));
            const float gg =
                bp__tanhf((a[2 * H + j] + bi[2 * H + j]) + (hh[2 * H + j] + bh[2 * H + j]));
            const float og =
                bp__sigmoidf((a[3 * H + j] + bi[3 * H + j]) + (hh[3 * H + j] + bh[3 * H + j]));
            const float c = fg * cp[j] + ig * gg;
            const float t = bp__tanhf(c);
            a[j] = ig, a[H + j] = fg, a[2 * H + j] = gg, a[3 * H + j] = og;
            co[j] = c;
            tc[j] = t;
            ho[j] = og * t;
        }
    }
}

BP__KERNEL
static int lstm_step_back(const bp__rstep_back *s)
{
    const size_t H = s->H;
    for (size_t r = 0; r < s->n; r++) {
        const float *restrict a = s->a + r * s->sa;
        const float *restrict cp = s->c_prev + r * s->sc;
        const float *restrict tc = s->aux + r * s->sx;
        const float *restrict dh = s->dh + r * H;
        float *restrict dc = s->dc + r * H;
        float *restrict dz = s->dz + r * s->sz;
        for (size_t j = 0; j < H; j++) {
            const float ig = a[j], fg = a[H + j], gg = a[2 * H + j], og = a[3 * H + j];
            const float t = tc[j], d = dh[j];
            const float dct = dc[j] + d * og * (1.0f - t * t);
            dz[j] = dct * gg * (ig * (1.0f - ig));
            dz[H + j] = dct * cp[j] * (fg * (1.0f - fg));
            dz[2 * H + j] = dct * ig * (1.0f - gg * gg);
            dz[3 * H + j] = d * t * (og * (1.0f - og));
            dc[j] = dct * fg;
        }
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

const bp__layer_vtable bp__lstm_vtable = {
    .kind = BP_LAYER_LSTM,
    .name = "lstm",
    .scratch_floats = bp__rec_scratch,
    .forward = bp__rec_forward,
    .backward = bp__rec_backward,
    .destroy = bp__rec_destroy,
    .clone = bp__rec_clone,
    .hyper = bp__rec_hyper,
    .construct = lstm_construct,
    .state_floats = bp__rec_state_floats,
    .state_write = bp__rec_state_write,
    .state_read = bp__rec_state_read,
    .keys = bp__rec_keys,
    .commit = bp__rec_commit,
};
