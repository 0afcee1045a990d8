/*
 * onnx_import_walk.c -- import: the walk along the chain of dynamic nodes from the graph
 * input to the graph output, recognising decomposed activations (subgraphs evaluated
 * pointwise) and the per-feature scalers at the ends of the chain.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_import.h"

/* ---- recognising decomposed activations: evaluate the subgraph ---- */

static int is_elementwise(const char *op)
{
    static const char *const ops[] = {
        "Add", "Sub", "Mul", "Div",  "Pow",      "Tanh",       "Sigmoid",  "Erf", "Sqrt",
        "Exp", "Log", "Neg", "Relu", "Softplus", "Reciprocal", "Identity", NULL};
    for (const char *const *p = ops; *p != NULL; p++)
        if (strcmp(op, *p) == 0) return 1;
    return 0;
}

#define NPTS 25

typedef struct region {
    const Onnx__NodeProto *nodes[64];
    size_t n;
} region;

/* Evaluate the region at points xs in double. vals hold one NPTS vector per region value. */
static int eval_region(importer *im, const region *r, const char *entry, double out[NPTS])
{
    double vals[65][NPTS];
    const char *names[65];
    size_t nv = 1;
    names[0] = entry;
    for (int j = 0; j < NPTS; j++)
        vals[0][j] = -6.0 + 12.0 * j / (NPTS - 1);
    for (size_t k = 0; k < r->n; k++) {
        const Onnx__NodeProto *n = r->nodes[k];
        double args[2][NPTS];
        const size_t nin = n->n_input;
        if (nin < 1 || nin > 2) return -1;
        for (size_t a = 0; a < nin; a++) {
            size_t v;
            for (v = 0; v < nv; v++)
                if (strcmp(names[v], n->input[a]) == 0) break;
            if (v < nv) {
                memcpy(args[a], vals[v], sizeof args[a]);
                continue;
            }
            const bpx_tensor *c = bpx_in_const(im, n, a);
            if (c == NULL || c->count != 1) return -1;
            const double cv = c->type == BPX_F32 ? (double)c->f[0] : (double)c->i[0];
            for (int j = 0; j < NPTS; j++)
                args[a][j] = cv;
        }
        const char *op = n->op_type;
        double *y = vals[nv];
        for (int j = 0; j < NPTS; j++) {
            const double p = args[0][j], q = nin > 1 ? args[1][j] : 0.0;
            double v;
            if (strcmp(op, "Add") == 0)
                v = p + q;
            else if (strcmp(op, "Sub") == 0)
                v = p - q;
            else if (strcmp(op, "Mul") == 0)
                v = p * q;
            else if (strcmp(op, "Div") == 0)
                v = p / q;
            else if (strcmp(op, "Pow") == 0)
                v = pow(p, q);
            else if (strcmp(op, "Tanh") == 0)
                v = tanh(p);
            else if (strcmp(op, "Sigmoid") == 0)
                v = 1.0 / (1.0 + exp(-p));
            else if (strcmp(op, "Erf") == 0)
                v = erf(p);
            else if (strcmp(op, "Sqrt") == 0)
                v = sqrt(p);
            else if (strcmp(op, "Exp") == 0)
                v = exp(p);
            else if (strcmp(op, "Log") == 0)
                v = log(p);
            else if (strcmp(op, "Neg") == 0)
                v = -p;
            else if (strcmp(op, "Relu") == 0)
                v = p > 0 ? p : 0.0;
            else if (strcmp(op, "Softplus") == 0)
                v = log1p(exp(p));
            else if (strcmp(op, "Reciprocal") == 0)
                v = 1.0 / p;
            else if (strcmp(op, "Identity") == 0)
                v = p;
            else
                return -1;
            y[j] = v;
        }
        names[nv++] = n->output[0];
    }
    memcpy(out, vals[nv - 1], sizeof(double) * NPTS);
    return 0;
}

static double ref_act(int which, double z)
{
    switch (which) {
    case 0: return 0.5 * z * (1.0 + tanh(0.79788456080286535588 * (z + 0.044715 * z * z * z)));
    case 1: return z / (1.0 + exp(-z));
    case 2: return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
    default: return 0.0;
    }
}

/* The activation the region computes: an enum bp_activation, -2 for the exact (erf) GELU,
 * -1 for none, -3 when it cannot be evaluated. */
static int match_region(importer *im, const region *r, const char *entry)
{
    for (size_t k = 0; k < r->n; k++)
        if (!is_elementwise(r->nodes[k]->op_type)) return -3;
    double y[NPTS];
    if (eval_region(im, r, entry, y) != 0) return -3;
    static const int acts[] = {BP_ACT_GELU, BP_ACT_SILU, -2};
    for (int which = 0; which < 3; which++) {
        int ok = 1;
        for (int j = 0; j < NPTS && ok; j++) {
            const double z = -6.0 + 12.0 * j / (NPTS - 1), want = ref_act(which, z);
            if (!(fabs(y[j] - want) <= 1e-6 + 1e-6 * fabs(want))) ok = 0;
        }
        if (ok) return acts[which];
    }
    return -1;
}

/* The single consumer of @p name among the dynamic nodes from @p from, if it is an
 * elementwise node whose other input is a scalar constant (a factor such as GELU's 0.5). */
static const Onnx__NodeProto *scalar_consumer(importer *im, const char *name, size_t from,
                                              size_t *at);

static bp_status classify_region(importer *im, region *r, const char *entry, int *act,
                                 const char **exit_name, size_t *pos)
{
    const Onnx__NodeProto *first = r->nodes[0];
    char ops[256] = "";
    for (size_t k = 0; k < r->n; k++) {
        const size_t len = strlen(ops);
        snprintf(ops + len, sizeof ops - len, "%s%s", k ? ", " : "", r->nodes[k]->op_type);
    }
    for (size_t k = 0; k < r->n; k++)
        if (!is_elementwise(r->nodes[k]->op_type))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, r->nodes[k],
                             "operator not supported here "
                             "(the graph branches around it: only chains of layers and "
                             "decomposed activations are imported; subgraph %s)",
                             ops);
    int m = match_region(im, r, entry);
    /* Constant factors and offsets may follow the branching part (0.5 * (x * (1 + tanh)):
     * extend the region by such nodes while it matches nothing. */
    region ext = *r;
    const char *ext_exit = *exit_name;
    size_t ext_pos = *pos;
    for (int extra = 0; extra < 4 && m == -1 && ext.n < 64; extra++) {
        size_t at;
        const Onnx__NodeProto *n = scalar_consumer(im, ext_exit, ext_pos, &at);
        if (n == NULL) break;
        ext.nodes[ext.n++] = n;
        ext_exit = n->output[0];
        ext_pos = at + 1;
        const int me = match_region(im, &ext, entry);
        if (me >= 0 || me == -2) {
            m = me;
            *r = ext;
            *exit_name = ext_exit;
            *pos = ext_pos;
        }
    }
    if (m == -3)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, first,
                         "subgraph of %zu nodes (%s) with non-scalar "
                         "constants or several inputs: not a recognisable activation",
                         r->n, ops);
    if (m == -2)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, first,
                         "subgraph (%s) computes the exact (erf) "
                         "GELU; the library's GELU is the tanh approximation: export with "
                         "nn.GELU(approximate='tanh')",
                         ops);
    if (m == -1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, first,
                         "subgraph of %zu nodes (%s) computes no "
                         "supported activation (recognised: GELU tanh form, SiLU)",
                         r->n, ops);
    *act = m;
    return BP_OK;
}

/* ---- the chain walk ---- */

/* Uses of value @p name by dynamic nodes after @p from and by the graph outputs. */
static size_t uses(importer *im, const char *name, size_t from)
{
    size_t u = 0;
    const Onnx__GraphProto *g = im->g;
    for (size_t k = from; k < g->n_node; k++) {
        if (!im->dynamic[k]) continue;
        for (size_t j = 0; j < g->node[k]->n_input; j++)
            if (strcmp(g->node[k]->input[j], name) == 0) u++;
    }
    for (size_t k = 0; k < g->n_output; k++)
        if (g->output[k]->name != NULL && strcmp(g->output[k]->name, name) == 0) u++;
    return u;
}

static const Onnx__NodeProto *scalar_consumer(importer *im, const char *name, size_t from,
                                              size_t *at)
{
    if (uses(im, name, from) != 1) return NULL;
    for (size_t k = from; k < im->g->n_node; k++) {
        if (!im->dynamic[k]) continue;
        const Onnx__NodeProto *n = im->g->node[k];
        int reads = 0;
        for (size_t j = 0; j < n->n_input; j++)
            if (strcmp(n->input[j], name) == 0) reads = 1;
        if (!reads) continue;
        if (n->n_input != 2 || !is_elementwise(n->op_type)) return NULL;
        const bpx_tensor *c = bpx_in_const(im, n, strcmp(n->input[0], name) == 0 ? 1 : 0);
        if (c == NULL || c->count != 1) return NULL;
        *at = k;
        return n;
    }
    return NULL;
}

static int is_graph_output(importer *im, const char *name)
{
    for (size_t k = 0; k < im->g->n_output; k++)
        if (im->g->output[k]->name != NULL && strcmp(im->g->output[k]->name, name) == 0) return 1;
    return 0;
}

static int take_scaler(importer *im, const Onnx__NodeProto *n, size_t k, const bpx_value *x,
                       const char **exit_name, size_t *last, bp_status *status);

bp_status bpx_walk_chain(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    const char *cur = im->input_name;
    size_t pos = 0; /* nodes before pos are done */
    for (;;) {
        if (is_graph_output(im, cur)) {
            const bpx_value *ov = bpx_find(&im->gr, cur);
            char core[BPX_MAX_RANK + 1] = "";
            if (ov != NULL && ov->has_shape) bpx_core_tags(ov, core);
            if (ov != NULL && ov->has_shape && !bpx_batch_first(core))
                return bpx_fail(BP_ERR_UNSUPPORTED,
                                "graph output '%s' has the layout %s (N batch, T steps, F "
                                "features, D directions): the batch must come first",
                                cur, ov->tag);
            if (uses(im, cur, pos) != 1)
                return bpx_fail(BP_ERR_UNSUPPORTED,
                                "value '%s' is the graph output and also "
                                "read by other nodes: only chains are supported",
                                cur);
            for (size_t k = pos; k < g->n_node; k++)
                if (im->dynamic[k])
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, g->node[k],
                                     "node after the graph "
                                     "output: only chains are supported");
            return BP_OK;
        }
        /* The region from cur: nodes in order that read region values. */
        region r = {.n = 0};
        const char *vals[65];
        size_t left[65], nv = 1;
        vals[0] = cur;
        left[0] = uses(im, cur, pos);
        if (left[0] == 0)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "value '%s' is not used and is not the graph "
                            "output: the graph is not a chain",
                            cur);
        const char *exit_name = NULL;
        size_t k;
        for (k = pos; k < g->n_node; k++) {
            if (!im->dynamic[k]) continue;
            const Onnx__NodeProto *n = g->node[k];
            int reads = 0;
            for (size_t j = 0; j < n->n_input; j++)
                for (size_t v = 0; v < nv; v++)
                    if (strcmp(n->input[j], vals[v]) == 0) {
                        reads = 1;
                        left[v]--;
                    }
            if (!reads) {
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "reads data outside the chain (a "
                                 "second graph input or branch): only chains are supported");
            }
            /* Every other input must be constant. */
            for (size_t j = 0; j < n->n_input; j++) {
                const bpx_value *v = bpx_find(&im->gr, n->input[j]);
                int inside = 0;
                for (size_t q = 0; q < nv; q++)
                    if (strcmp(n->input[j], vals[q]) == 0) inside = 1;
                const int state_input =
                    (j == 5 || (j == 6 && strcmp(n->op_type, "LSTM") == 0)) &&
                    (strcmp(n->op_type, "RNN") == 0 || strcmp(n->op_type, "GRU") == 0 ||
                     strcmp(n->op_type, "LSTM") == 0);
                if (!inside && v != NULL && v->bcast && !state_input)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "input '%s' repeats a constant over the batch (a shape "
                                     "built from the data's batch size): only the initial state "
                                     "of RNN, LSTM and GRU may be one",
                                     n->input[j]);
                if (!inside && v != NULL && !v->is_const && !v->bcast)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "input '%s' joins another branch: "
                                     "only chains are supported",
                                     n->input[j]);
            }
            if (r.n == 64 || nv == 65)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "subgraph too large to be an "
                                 "activation: only chains are supported");
            r.nodes[r.n++] = n;
            /* A recurrent node continues with the one output used: Y or Y_h. */
            const char *o = n->output[0];
            if (bpx_is_recurrent(n->op_type)) {
                size_t used = 0;
                for (size_t j = 0; j < n->n_output && j < 3; j++)
                    if (n->output[j][0] != '\0' && uses(im, n->output[j], k + 1) > 0) {
                        o = n->output[j];
                        used++;
                    }
                if (used > 1)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "several of its outputs (Y, Y_h, Y_c) are used: only "
                                     "chains are supported");
            }
            vals[nv] = o;
            left[nv] = uses(im, o, k + 1);
            nv++;
            size_t open = 0;
            for (size_t v = 0; v < nv; v++)
                if (left[v] > 0) open++;
            if (open == 1 && left[nv - 1] > 0) {
                exit_name = o;
                break;
            }
            if (open == 0)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "the chain ends without reaching the "
                                 "graph output");
        }
        if (exit_name == NULL)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "value '%s': the graph does not continue as a "
                            "chain to its output",
                            cur);
        const bpx_value *x = bpx_find(&im->gr, cur);
        const bpx_value *y = bpx_find(&im->gr, exit_name);
        if (x == NULL || y == NULL || !x->has_shape)
            return bpx_fail(BP_ERR_UNSUPPORTED, "value '%s': shape unknown", cur);
        const size_t before = im->nsteps;
        bp_status scaler_status = BP_OK;
        size_t last = k;
        if (r.n == 1 && take_scaler(im, r.nodes[0], k, x, &exit_name, &last, &scaler_status)) {
            BP_CHECK(scaler_status);
            k = last;
            y = bpx_find(&im->gr, exit_name);
            if (y == NULL) return bpx_fail(BP_ERR_FORMAT, "value '%s' undefined", exit_name);
        } else if (r.n == 1 && !(strcmp(r.nodes[0]->op_type, "Mul") == 0 ||
                                 strcmp(r.nodes[0]->op_type, "Div") == 0 ||
                                 strcmp(r.nodes[0]->op_type, "Sub") == 0 ||
                                 strcmp(r.nodes[0]->op_type, "Pow") == 0)) {
            const Onnx__NodeProto *n = r.nodes[0];
            for (size_t j = 1; j < n->n_output; j++)
                if (n->output[j][0] != '\0' && uses(im, n->output[j], k + 1) > 0 &&
                    strcmp(n->op_type, "Dropout") != 0 && !bpx_is_recurrent(n->op_type))
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "output %zu is used: only the first "
                                     "output is supported",
                                     j);
            BP_CHECK(bpx_map_node(im, n, x, y));
        } else {
            int act = 0;
            size_t next = k + 1;
            BP_CHECK(classify_region(im, &r, cur, &act, &exit_name, &next));
            BP_CHECK(bpx_add_act(im, r.nodes[0], act, -1.0));
            k = next - 1;
            y = bpx_find(&im->gr, exit_name);
            if (y == NULL) return bpx_fail(BP_ERR_FORMAT, "value '%s' undefined", exit_name);
        }
        for (size_t q = before; q < im->nsteps; q++)
            im->steps[q].out_width = y->has_shape ? bpx_value_row(y) : 0;
        cur = exit_name;
        pos = k + 1;
    }
}

/* ---- scalers: per-feature affine nodes at the ends of the chain ---- */

/* The constant input of the binary node @p n other than the data @p data, when it holds one
 * float per feature of rows of shape @p x (broadcasting over the batch: [W], the row's own
 * shape, or that shape with a leading 1). */
static const bpx_tensor *per_feature(importer *im, const Onnx__NodeProto *n, const char *data,
                                     const bpx_value *x)
{
    if (n->n_input != 2 || strcmp(n->input[0], data) != 0) return NULL;
    const bpx_tensor *c = bpx_in_const(im, n, 1);
    if (c == NULL || c->type != BPX_F32 || !x->has_shape) return NULL;
    const size_t width = bpx_row_size(x->rank, x->dims);
    if (c->count != width) return NULL;
    if (c->rank == 1) return c->dims[0] == (int64_t)width ? c : NULL;
    const size_t lead = c->rank == x->rank ? 1 : 0;
    if (c->rank + 1 - lead != x->rank || (lead && c->dims[0] != 1)) return NULL;
    for (size_t k = 1; k < x->rank; k++)
        if (c->dims[k - 1 + lead] != x->dims[k]) return NULL;
    return c;
}

/* The one dynamic node after @p k that reads @p name as its first input, when @p name has
 * no other use. */
static const Onnx__NodeProto *sole_consumer(importer *im, const char *name, size_t k, size_t *at)
{
    if (uses(im, name, k + 1) != 1) return NULL;
    for (size_t j = k + 1; j < im->g->n_node; j++) {
        if (!im->dynamic[j]) continue;
        const Onnx__NodeProto *n = im->g->node[j];
        for (size_t q = 0; q < n->n_input; q++)
            if (strcmp(n->input[q], name) == 0) {
                *at = j;
                return q == 0 ? n : NULL;
            }
    }
    return NULL;
}

/* Node @p n (at index @p k) reading @p cur: when it and the node after it are a scaler --
 * Sub (offset) then Mul (scale) or Div (1 / scale) reading the graph input before any
 * layer, or Div (scale) or Mul (1 / scale) then Add (offset) writing the graph output --
 * record it, set *exit_name and *last to the pair's output and index, and return 1. */
static int take_scaler(importer *im, const Onnx__NodeProto *n, size_t k, const bpx_value *x,
                       const char **exit_name, size_t *last, bp_status *status)
{
    const char *op = n->op_type;
    const int input_side = strcmp(op, "Sub") == 0 && im->nsteps == 0 && im->scaler[0][0] == NULL &&
                           strcmp(x->name, im->input_name) == 0;
    const int target_side =
        (strcmp(op, "Div") == 0 || strcmp(op, "Mul") == 0) && im->scaler[1][0] == NULL;
    if (!input_side && !target_side) return 0;
    const bpx_tensor *c1 = per_feature(im, n, x->name, x);
    size_t at = 0;
    const Onnx__NodeProto *n2 = c1 != NULL ? sole_consumer(im, n->output[0], k, &at) : NULL;
    if (n2 == NULL || n->n_attribute > 0 || n2->n_attribute > 0) return 0;
    const char *op2 = n2->op_type;
    if (input_side ? !(strcmp(op2, "Mul") == 0 || strcmp(op2, "Div") == 0)
                   : !(strcmp(op2, "Add") == 0 && is_graph_output(im, n2->output[0])))
        return 0;
    const bpx_tensor *c2 = per_feature(im, n2, n->output[0], x);
    if (c2 == NULL) return 0;
    /* offset, then the scale and the node that holds it */
    const bpx_tensor *off = input_side ? c1 : c2, *sc = input_side ? c2 : c1;
    const int direct = input_side ? strcmp(op2, "Mul") == 0 : strcmp(op, "Div") == 0;
    const int part = input_side ? 0 : 1;
    const size_t width = c1->count;
    float *o = bpx_copy_floats(off->f, width), *f = bpx_copy_floats(sc->f, width);
    if (o == NULL || f == NULL) {
        free(o);
        free(f);
        *status = bpx_fail(BP_ERR_NOMEM, "out of memory");
        return 1;
    }
    /* bp_scaler_apply: (v - offset) * scale; bp_scaler_invert: v / scale + offset. A Mul at
     * the target side or a Div at the input side holds 1 / scale. */
    if (!direct)
        for (size_t j = 0; j < width; j++)
            f[j] = 1.0f / f[j];
    im->scaler[part][0] = o;
    im->scaler[part][1] = f;
    im->scaler_width[part] = width;
    *exit_name = n2->output[0];
    *last = at;
    *status = BP_OK;
    return 1;
}
