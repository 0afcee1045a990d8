/*
 * onnx_common.c -- the thread-local message, the bounded protobuf allocator, tensor decoding
 * and the value table of an import.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

/* ---- errors ---- */

static _Thread_local char bpx_msg[512];

const char *bp_onnx_last_error(void)
{
    return bpx_msg;
}

void bpx_clear_error(void)
{
    bpx_msg[0] = '\0';
}

bp_status bpx_fail(bp_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bpx_msg, sizeof bpx_msg, fmt, ap);
    va_end(ap);
    return status;
}

bp_status bpx_fail_core(bp_status s, const char *what)
{
    return bpx_fail(s, "%s: %s", what, bp_last_error());
}

/* ---- the bounded allocator: parsing allocates at most a fixed multiple of the input ---- */

typedef struct {
    size_t size;
    size_t pad; /* keeps the payload 16-byte aligned */
} bpx_block;

static void *bounded_alloc(void *data, size_t size)
{
    bpx_budget *b = data;
    if (size > b->limit - b->used || size > SIZE_MAX - sizeof(bpx_block)) {
        b->exceeded = 1;
        return NULL;
    }
    bpx_block *blk = malloc(sizeof *blk + size);
    if (blk == NULL) return NULL;
    blk->size = size;
    b->used += size;
    return blk + 1;
}

static void bounded_free(void *data, void *p)
{
    if (p == NULL) return;
    bpx_budget *b = data;
    bpx_block *blk = (bpx_block *)p - 1;
    b->used -= blk->size;
    free(blk);
}

void bpx_allocator_init(ProtobufCAllocator *a, bpx_budget *b, size_t input_size)
{
    b->used = 0;
    b->exceeded = 0;
    b->limit = (input_size > (SIZE_MAX - 65536) / BP_ONNX_PARSE_FACTOR)
                   ? SIZE_MAX
                   : input_size * BP_ONNX_PARSE_FACTOR + 65536;
    a->alloc = bounded_alloc;
    a->free = bounded_free;
    a->allocator_data = b;
}

/* ---- nesting depth: protobuf-c recurses once per nested message, without a limit ---- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -1;
        const uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Scan [p, end) as a protobuf message, treating every length-delimited field as a possible
 * nested message (the wire format does not say which are). Returns 1 when it is a message
 * whose nesting stays within @p depth_left levels, 0 when it is not a message (then it is
 * opaque bytes), -1 as soon as a prefix of it nests deeper (protobuf-c would recurse that
 * deep before noticing anything else). Each byte is scanned at most once per level. */
static int scan_depth(const uint8_t *p, const uint8_t *end, int depth_left)
{
    while (p < end) {
        uint64_t key, len;
        if (read_varint(&p, end, &key) != 0 || (key >> 3) == 0) return 0;
        switch (key & 7) {
        case 0:
            if (read_varint(&p, end, &len) != 0) return 0;
            break;
        case 1:
            if (end - p < 8) return 0;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return 0;
            p += 4;
            break;
        case 2: {
            if (read_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p)) return 0;
            if (len > 0) {
                if (depth_left == 0) {
                    /* One level too deep if this is a message at all. */
                    if (scan_depth(p, p + len, -1) == 1) return -1;
                } else if (depth_left > 0 && scan_depth(p, p + len, depth_left - 1) == -1) {
                    return -1;
                }
            }
            p += len;
            break;
        }
        default: return 0;
        }
    }
    return 1;
}

int bpx_nesting_ok(const uint8_t *buf, size_t size)
{
    return scan_depth(buf, buf + size, BPX_MAX_NESTING) != -1;
}

/* ---- tensors ---- */

void bpx_tensor_free(bpx_tensor *t)
{
    if (t == NULL) return;
    free(t->f);
    free(t->i);
    t->f = NULL;
    t->i = NULL;
}

bp_status bpx_tensor_new(bpx_tensor *t, int type, size_t rank, const int64_t *dims)
{
    memset(t, 0, sizeof *t);
    if (rank > BPX_MAX_RANK)
        return bpx_fail(BP_ERR_UNSUPPORTED, "rank %zu > %d", rank, BPX_MAX_RANK);
    size_t count = 1;
    for (size_t k = 0; k < rank; k++) {
        if (dims[k] < 0)
            return bpx_fail(BP_ERR_FORMAT, "negative dimension %lld", (long long)dims[k]);
        if (dims[k] != 0 && count > (SIZE_MAX / 16) / (size_t)dims[k])
            return bpx_fail(BP_ERR_FORMAT, "tensor size overflows");
        count *= (size_t)dims[k];
        t->dims[k] = dims[k];
    }
    t->type = type;
    t->rank = rank;
    t->count = count;
    const size_t n = count > 0 ? count : 1;
    if (type == BPX_F32)
        t->f = malloc(n * sizeof(float));
    else
        t->i = malloc(n * sizeof(int64_t));
    if (t->f == NULL && t->i == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    return BP_OK;
}

static float half_to_float(uint16_t h)
{
    const unsigned sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)mant, -24);
    else if (exp == 31)
        v = mant != 0 ? NAN : INFINITY;
    else
        v = ldexpf((float)(mant | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static uint64_t read_le(const uint8_t *p, size_t width)
{
    uint64_t v = 0;
    for (size_t k = 0; k < width; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

/* Element width of a raw_data encoding, 0 for types we do not decode. */
static size_t raw_width(int dt)
{
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    default: return 0;
    }
}

static const char *type_name(int dt)
{
    static const char *const names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                        "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                        "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16"};
    return dt >= 0 && dt < (int)(sizeof names / sizeof names[0]) ? names[dt] : "unknown";
}

bp_status bpx_tensor_decode(bpx_tensor *t, const Onnx__TensorProto *tp, const char *what)
{
    memset(t, 0, sizeof *t);
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return bpx_fail(BP_ERR_UNSUPPORTED, "%s: external tensor data is not supported", what);
    if (tp->segment != NULL)
        return bpx_fail(BP_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    if (tp->n_dims > BPX_MAX_RANK)
        return bpx_fail(BP_ERR_UNSUPPORTED, "%s: rank %zu (at most %d)", what, tp->n_dims,
                        BPX_MAX_RANK);
    const int dt = tp->has_data_type ? tp->data_type : 0;
    const size_t width = raw_width(dt);
    if (width == 0)
        return bpx_fail(BP_ERR_UNSUPPORTED,
                        "%s: data type %s (%d) is not supported (float32, "
                        "float16, bfloat16, float64 and integers are)",
                        what, type_name(dt), dt);
    size_t count = 1;
    for (size_t k = 0; k < tp->n_dims; k++) {
        if (tp->dims[k] < 0)
            return bpx_fail(BP_ERR_FORMAT, "%s: dimension %zu is %lld", what, k,
                            (long long)tp->dims[k]);
        if (tp->dims[k] != 0 && count > (SIZE_MAX / 16) / (uint64_t)tp->dims[k])
            return bpx_fail(BP_ERR_FORMAT, "%s: element count overflows", what);
        count *= (size_t)tp->dims[k];
    }
    /* Where the elements are, and how many the message holds: checked before allocating. */
    const int is_float = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 ||
                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    size_t have;
    const int raw = tp->has_raw_data;
    if (raw) {
        have = tp->raw_data.len / width;
        if (tp->raw_data.len % width != 0) have = (size_t)-1;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        have = tp->n_float_data;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        have = tp->n_double_data;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        have = tp->n_int64_data;
    } else {
        have = tp->n_int32_data;
    }
    if (have != count)
        return bpx_fail(BP_ERR_FORMAT, "%s: declares %zu elements of %s, holds %s%zu", what, count,
                        type_name(dt), raw ? "raw data for " : "", have == (size_t)-1 ? 0 : have);
    int64_t dims[BPX_MAX_RANK];
    for (size_t k = 0; k < tp->n_dims; k++)
        dims[k] = tp->dims[k];
    BP_CHECK(bpx_tensor_new(t, is_float ? BPX_F32 : BPX_I64, tp->n_dims, dims));
    const uint8_t *r = tp->raw_data.data;
    for (size_t k = 0; k < count; k++) {
        if (is_float) {
            double v;
            switch (dt) {
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
                if (raw) {
                    const uint32_t u = (uint32_t)read_le(r + 4 * k, 4);
                    float fv;
                    memcpy(&fv, &u, sizeof fv);
                    v = (double)fv;
                } else {
                    v = (double)tp->float_data[k];
                }
                break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
                if (raw) {
                    const uint64_t u = read_le(r + 8 * k, 8);
                    memcpy(&v, &u, sizeof v);
                } else {
                    v = tp->double_data[k];
                }
                if (isfinite(v) && fabs(v) > (double)FLT_MAX) {
                    bpx_tensor_free(t);
                    return bpx_fail(BP_ERR_UNSUPPORTED,
                                    "%s: float64 element %zu = %g does "
                                    "not fit in float32",
                                    what, k, v);
                }
                break;
            default: {
                const uint16_t h =
                    raw ? (uint16_t)read_le(r + 2 * k, 2) : (uint16_t)tp->int32_data[k];
                v = (double)(dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? half_to_float(h)
                                                                          : bf16_to_float(h));
            }
            }
            t->f[k] = (float)v;
        } else {
            int64_t v;
            if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
                v = raw ? (int64_t)read_le(r + 8 * k, 8) : tp->int64_data[k];
            } else if (raw) {
                const uint64_t u = read_le(r + width * k, width);
                switch (dt) {
                case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: v = (int32_t)(uint32_t)u; break;
                case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: v = (int16_t)(uint16_t)u; break;
                case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: v = (int8_t)(uint8_t)u; break;
                default: v = (int64_t)u; break;
                }
            } else {
                v = tp->int32_data[k];
            }
            t->i[k] = v;
        }
    }
    return BP_OK;
}

/* ---- the value table ---- */

bpx_value *bpx_find(bpx_graph *gr, const char *name)
{
    if (name == NULL || name[0] == '\0') return NULL;
    for (size_t k = gr->nvalues; k-- > 0;)
        if (strcmp(gr->values[k].name, name) == 0) return &gr->values[k];
    return NULL;
}

bpx_value *bpx_add(bpx_graph *gr, const char *name)
{
    if (gr->nvalues == gr->cap) {
        const size_t cap = gr->cap ? 2 * gr->cap : 64;
        bpx_value *v = realloc(gr->values, cap * sizeof *v);
        if (v == NULL) return NULL;
        gr->values = v;
        gr->cap = cap;
    }
    bpx_value *v = &gr->values[gr->nvalues++];
    memset(v, 0, sizeof *v);
    v->name = name;
    return v;
}

const char *bpx_node_name(const Onnx__NodeProto *n)
{
    if (n->name != NULL && n->name[0] != '\0') return n->name;
    if (n->n_output > 0 && n->output[0] != NULL) return n->output[0];
    return "?";
}

const Onnx__AttributeProto *bpx_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name != NULL && strcmp(n->attribute[k]->name, name) == 0)
            return n->attribute[k];
    return NULL;
}
