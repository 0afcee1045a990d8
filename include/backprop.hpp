/*
 * backprop.hpp -- header-only C++17 wrappers of the C API in backprop.h.
 *
 *     bp::Net net(2, 42);                                   // 2 inputs, seed 42
 *     net.add_dense(8, BP_ACT_TANH).add_dense(1, BP_ACT_SIGMOID);
 *     bp::Optimizer opt(BP_OPTIMIZER_ADAM);
 *     opt.set(BP_OPT_LEARNING_RATE, 0.05);
 *     std::vector<float> x{0, 0, 0, 1, 1, 0, 1, 1}, y{0, 1, 1, 0};
 *     for (int i = 0; i < 500; i++) net.train_step(opt, BP_LOSS_MSE, x, y);
 *     std::vector<float> out = net.predict(x);              // ~ {0, 1, 1, 0}
 *
 * - bp::Net, bp::Optimizer and bp::Dataset own their handle (RAII): movable, not copyable;
 *   a moved-from object holds no handle and its calls throw bp::Error(BP_ERR_INVALID_ARG).
 *   bp::Layer is a non-owning view, valid while its network lives.
 * - Every failing call throws bp::Error (a std::runtime_error) carrying the status and the
 *   library's message (bp_last_error() of the calling thread); nothing else is thrown
 *   except std::bad_alloc.
 * - Only the C API is used: the library stays a C library, with no C++ ABI of its own.
 *   Mixing this header with direct C calls on `handle()` is allowed.
 * - Threads: as in C, one thread at a time per object; distinct objects are independent.
 */
#ifndef BACKPROP_HPP
#define BACKPROP_HPP

#include "backprop.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bp
{

/** A failed library call: status() is the bp_status, what() the library's message. */
class Error : public std::runtime_error
{
  public:
    Error(int status, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(bp_status_string(status)) : message),
          status_(status)
    {
    }
    /** The bp_status code of the failure (negative). */
    int status() const noexcept { return status_; }

  private:
    int status_;
};

namespace detail
{

inline void check(bp_status status)
{
    if (status != BP_OK) throw Error(status, bp_last_error());
}

[[noreturn]] inline void fail(int status, const std::string &message)
{
    throw Error(status, message);
}

template <class T> T *require(T *handle, const char *what)
{
    if (handle == nullptr) fail(BP_ERR_INVALID_ARG, std::string(what) + ": no handle (moved from)");
    return handle;
}

struct NetFree {
    void operator()(bp_net *p) const noexcept { bp_net_free(p); }
};
struct OptimizerFree {
    void operator()(bp_optimizer *p) const noexcept { bp_optimizer_free(p); }
};
struct DatasetFree {
    void operator()(bp_dataset *p) const noexcept { bp_dataset_free(p); }
};

inline std::size_t rows_of(std::size_t count, std::size_t width, const char *what)
{
    if (width == 0 || count % width != 0)
        fail(BP_ERR_SHAPE, std::string(what) + ": " + std::to_string(count) +
                               " floats are not rows of width " + std::to_string(width));
    return count / width;
}

template <class Save> std::vector<unsigned char> to_bytes(Save save)
{
    std::size_t size = 0;
    bp_status s = save(nullptr, 0, &size);
    if (s != BP_OK && s != BP_ERR_BUFFER_TOO_SMALL) check(s);
    std::vector<unsigned char> bytes(size);
    check(save(bytes.data(), bytes.size(), &size));
    bytes.resize(size);
    return bytes;
}

} // namespace detail

/** bp_version(). */
inline unsigned version() noexcept
{
    return bp_version();
}
/** bp_version_string(). */
inline std::string version_string()
{
    return bp_version_string();
}
/** bp_status_string(). */
inline std::string status_string(int status)
{
    return bp_status_string(status);
}
/** bp_last_error() of the calling thread. */
inline std::string last_error()
{
    return bp_last_error();
}
/** bp_set_num_threads(). */
inline void set_num_threads(int threads)
{
    detail::check(bp_set_num_threads(threads));
}
/** bp_get_num_threads(). */
inline int get_num_threads() noexcept
{
    return bp_get_num_threads();
}
/** bp_backend_info(). */
inline std::string backend_info()
{
    return bp_backend_info();
}
/** bp_metric_name(). */
inline std::string metric_name(int metric)
{
    return bp_metric_name(metric);
}
/** bp_argmax(): the index of the largest value of each row of @p width floats. */
inline std::vector<std::size_t> argmax(const std::vector<float> &values, std::size_t width)
{
    std::size_t n = detail::rows_of(values.size(), width, "bp::argmax");
    std::vector<std::size_t> index(n);
    detail::check(bp_argmax(values.data(), n, width, index.data(), index.size()));
    return index;
}
/** bp_format_version(). */
inline unsigned format_version() noexcept
{
    return bp_format_version();
}

/** Inclusive bounds of a setting, as returned by the bp_*_param_bounds() functions. */
struct Bounds {
    double lo;
    double hi;
};

/** The shape of one row, channels-first: [channels x height x width]; flat rows are
 *  [width x 1 x 1]. */
struct Shape {
    std::size_t channels;
    std::size_t height;
    std::size_t width;
    bool operator==(const Shape &o) const noexcept
    {
        return channels == o.channels && height == o.height && width == o.width;
    }
    bool operator!=(const Shape &o) const noexcept { return !(*this == o); }
};

class Net;

/** A gradient-descent optimizer (bp_optimizer). */
class Optimizer
{
  public:
    /** bp_optimizer_create(): @p kind is an enum bp_optimizer_kind value. */
    explicit Optimizer(int kind)
    {
        bp_optimizer *h = nullptr;
        detail::check(bp_optimizer_create(&h, kind));
        h_.reset(h);
    }
    /** Take ownership of a handle from the C API. */
    static Optimizer adopt(bp_optimizer *handle) { return Optimizer(handle); }

    int kind() const noexcept { return bp_optimizer_kind(h_.get()); }
    Optimizer &set(int key, double value)
    {
        detail::check(bp_optimizer_set(handle(), key, value));
        return *this;
    }
    double get(int key) const
    {
        double v = 0;
        detail::check(bp_optimizer_get(handle(), key, &v));
        return v;
    }
    static Bounds param_bounds(int key)
    {
        Bounds b{0, 0};
        detail::check(bp_optimizer_param_bounds(key, &b.lo, &b.hi));
        return b;
    }
    inline void step(Net &net);
    void reset() { detail::check(bp_optimizer_reset(handle())); }
    /** Every setting back to the algorithm's default (bp_optimizer_reset_settings). */
    void reset_settings() { detail::check(bp_optimizer_reset_settings(handle())); }
    std::uint64_t step_count() const noexcept { return bp_optimizer_step_count(h_.get()); }
    std::string last_error() const { return bp_optimizer_last_error(handle()); }

    /** The C handle (borrowed; still owned by this object). Throws if moved from. */
    bp_optimizer *handle() const { return detail::require(h_.get(), "bp::Optimizer"); }
    /** Give up ownership: the caller frees the handle with bp_optimizer_free(). */
    bp_optimizer *release() noexcept { return h_.release(); }

  private:
    explicit Optimizer(bp_optimizer *h) : h_(h) {}
    std::unique_ptr<bp_optimizer, detail::OptimizerFree> h_;
};

/** A non-owning view of one layer of a network (bp_layer); valid while the network lives
 *  and until it is moved from. */
class Layer
{
  public:
    explicit Layer(bp_layer *handle) : h_(handle) {}

    int kind() const noexcept { return bp_layer_kind(h_); }
    int activation() const noexcept { return bp_layer_activation(h_); }
    std::size_t input_size() const noexcept { return bp_layer_input_size(h_); }
    std::size_t output_size() const noexcept { return bp_layer_output_size(h_); }
    std::size_t param_count() const noexcept { return bp_layer_param_count(h_); }
    /** bp_layer_output_shape(): [C x H x W] of one output row. */
    Shape output_shape() const
    {
        Shape s{0, 0, 0};
        detail::check(bp_layer_output_shape(handle(), &s.channels, &s.height, &s.width));
        return s;
    }
    /** bp_layer_grad_norm(): L2 norm of the gradients of the last backward pass. */
    double grad_norm() const
    {
        double norm = 0;
        detail::check(bp_layer_grad_norm(handle(), &norm));
        return norm;
    }
    /** Biases: one per output channel for the kinds with parameters (dense, conv2d,
     *  batchnorm beta), 0 for the others. */
    std::size_t bias_count() const { return param_count() == 0 ? 0 : output_shape().channels; }
    /** Weights: param_count() - bias_count(). */
    std::size_t weight_count() const { return param_count() - bias_count(); }

    /** The weights: dense W [out x in] row-major, conv2d [filters x C x kernel_h x kernel_w],
     *  batchnorm gamma [C]; empty for the kinds without parameters. */
    std::vector<float> weights() const { return copy(bp_layer_get_weights, weight_count()); }
    std::vector<float> biases() const { return copy(bp_layer_get_biases, bias_count()); }
    std::vector<float> weight_grad() const
    {
        return copy(bp_layer_get_weight_grad, weight_count());
    }
    std::vector<float> bias_grad() const { return copy(bp_layer_get_bias_grad, bias_count()); }
    void set_weights(const std::vector<float> &w)
    {
        detail::check(bp_layer_set_weights(handle(), w.data(), w.size()));
    }
    void set_biases(const std::vector<float> &b)
    {
        detail::check(bp_layer_set_biases(handle(), b.data(), b.size()));
    }
    void init_weights(int scheme, double value = 0)
    {
        detail::check(bp_layer_init_weights(handle(), scheme, value));
    }
    Layer &set(int key, double value)
    {
        detail::check(bp_layer_set(handle(), key, value));
        return *this;
    }
    double get(int key) const
    {
        double v = 0;
        detail::check(bp_layer_get(handle(), key, &v));
        return v;
    }
    static Bounds param_bounds(int key)
    {
        Bounds b{0, 0};
        detail::check(bp_layer_param_bounds(key, &b.lo, &b.hi));
        return b;
    }
    /** Every setting back to its default (bp_layer_reset_settings). */
    void reset_settings() { detail::check(bp_layer_reset_settings(handle())); }
    bp_layer *handle() const { return detail::require(h_, "bp::Layer"); }

  private:
    using getter = bp_status (*)(const bp_layer *, float *, std::size_t);
    std::vector<float> copy(getter fn, std::size_t count) const
    {
        std::vector<float> out(count);
        if (count > 0) detail::check(fn(handle(), out.data(), out.size()));
        return out;
    }
    bp_layer *h_;
};

/** A data set (bp_dataset): inputs [n x in], targets [n x out]. */
class Dataset
{
  public:
    /** bp_dataset_create(): copies the arrays. */
    Dataset(const float *x, const float *y, std::size_t n, std::size_t inputs, std::size_t outputs)
    {
        bp_dataset *h = nullptr;
        detail::check(bp_dataset_create(&h, x, y, n, inputs, outputs));
        h_.reset(h);
    }
    /** From vectors of n * inputs and n * outputs floats. */
    Dataset(const std::vector<float> &x, const std::vector<float> &y, std::size_t inputs,
            std::size_t outputs = 1)
        : Dataset(x.data(), y.data(), rows(x.size(), y.size(), inputs, outputs), inputs, outputs)
    {
    }
    static Dataset adopt(bp_dataset *handle) { return Dataset(handle); }

    static Dataset load_csv(const std::string &path, std::size_t target_first,
                            std::size_t target_count = 1, char delimiter = ',',
                            bool has_header = false)
    {
        bp_dataset *h = nullptr;
        detail::check(bp_dataset_load_csv(&h, path.c_str(), delimiter, has_header ? 1 : 0,
                                          target_first, target_count));
        return Dataset(h);
    }
    static Dataset load_fann(const std::string &path)
    {
        bp_dataset *h = nullptr;
        detail::check(bp_dataset_load_fann(&h, path.c_str()));
        return Dataset(h);
    }
    static Dataset load_idx(const std::string &images, const std::string &labels,
                            std::size_t classes = 0)
    {
        bp_dataset *h = nullptr;
        detail::check(bp_dataset_load_idx(&h, images.c_str(), labels.c_str(), classes));
        return Dataset(h);
    }
    void save_fann(const std::string &path) const
    {
        detail::check(bp_dataset_save_fann(handle(), path.c_str()));
    }

    std::size_t size() const noexcept { return bp_dataset_size(h_.get()); }
    std::size_t input_size() const noexcept { return bp_dataset_input_size(h_.get()); }
    std::size_t output_size() const noexcept { return bp_dataset_output_size(h_.get()); }
    /** Borrowed [n x in]; valid until the data set is modified or destroyed. */
    const float *inputs() const noexcept { return bp_dataset_inputs(h_.get()); }
    /** Borrowed [n x out]; valid until the data set is modified or destroyed. */
    const float *targets() const noexcept { return bp_dataset_targets(h_.get()); }
    std::string last_error() const { return bp_dataset_last_error(handle()); }

    Dataset &shuffle(std::uint64_t seed)
    {
        detail::check(bp_dataset_shuffle(handle(), seed));
        return *this;
    }
    std::pair<Dataset, Dataset> split(double fraction) const
    {
        bp_dataset *a = nullptr, *b = nullptr;
        detail::check(bp_dataset_split(&a, &b, handle(), fraction));
        return {Dataset(a), Dataset(b)};
    }
    Dataset subset(std::size_t start, std::size_t count) const
    {
        bp_dataset *h = nullptr;
        detail::check(bp_dataset_subset(&h, handle(), start, count));
        return Dataset(h);
    }
    /** bp_dataset_fit_scaler(): (offsets, scales) per column of @p part. */
    std::pair<std::vector<float>, std::vector<float>> fit_scaler(int kind, int part) const
    {
        std::size_t width = part == BP_SCALE_TARGETS ? output_size() : input_size();
        std::vector<float> offset(width), scale(width);
        detail::check(
            bp_dataset_fit_scaler(handle(), kind, part, offset.data(), scale.data(), width));
        return {offset, scale};
    }
    Dataset &apply_scaler(int part, const std::vector<float> &offset,
                          const std::vector<float> &scale)
    {
        if (offset.size() != scale.size())
            detail::fail(BP_ERR_SHAPE,
                         "bp::Dataset::apply_scaler: " + std::to_string(offset.size()) +
                             " offsets but " + std::to_string(scale.size()) + " scales");
        detail::check(
            bp_dataset_apply_scaler(handle(), part, offset.data(), scale.data(), offset.size()));
        return *this;
    }
    std::size_t class_count() const
    {
        std::size_t classes = 0;
        detail::check(bp_dataset_class_count(handle(), &classes));
        return classes;
    }
    Dataset one_hot(std::size_t classes) const
    {
        bp_dataset *h = nullptr;
        detail::check(bp_dataset_one_hot(&h, handle(), classes));
        return Dataset(h);
    }

    /** The C handle (borrowed; still owned by this object). Throws if moved from. */
    bp_dataset *handle() const { return detail::require(h_.get(), "bp::Dataset"); }
    /** Give up ownership: the caller frees the handle with bp_dataset_free(). */
    bp_dataset *release() noexcept { return h_.release(); }

  private:
    explicit Dataset(bp_dataset *h) : h_(h) {}
    static std::size_t rows(std::size_t xs, std::size_t ys, std::size_t inputs, std::size_t outputs)
    {
        std::size_t n = detail::rows_of(xs, inputs, "bp::Dataset: x");
        if (ys != n * outputs)
            detail::fail(BP_ERR_SHAPE, "bp::Dataset: " + std::to_string(ys) +
                                           " target floats, expected " +
                                           std::to_string(n * outputs));
        return n;
    }
    std::unique_ptr<bp_dataset, detail::DatasetFree> h_;
};

/** A network (bp_net). Methods that build it return *this for chaining. */
class Net
{
  public:
    /** bp_net_create(). */
    explicit Net(std::size_t inputs, std::uint64_t seed = 0)
    {
        bp_net *h = nullptr;
        detail::check(bp_net_create(&h, inputs, seed));
        h_.reset(h);
    }
    /** bp_net_create_image(): input rows are images [channels x height x width], NCHW. */
    static Net image(std::size_t channels, std::size_t height, std::size_t width,
                     std::uint64_t seed = 0)
    {
        bp_net *h = nullptr;
        detail::check(bp_net_create_image(&h, channels, height, width, seed));
        return Net(h);
    }
    /** Take ownership of a handle from the C API. */
    static Net adopt(bp_net *handle) { return Net(handle); }

    /** bp_net_clone(): an independent deep copy (one per thread for concurrent work). The
     *  copy has no epoch callback (the C copy would share this object's callback state). */
    Net clone() const
    {
        bp_net *h = nullptr;
        detail::check(bp_net_clone(&h, handle()));
        Net copy(h);
        detail::check(bp_net_set_epoch_callback(h, nullptr, nullptr));
        return copy;
    }

    Net &add_dense(std::size_t units, int activation = BP_ACT_IDENTITY)
    {
        detail::check(bp_net_add_dense(handle(), units, activation));
        return *this;
    }
    Net &add_batchnorm()
    {
        detail::check(bp_net_add_batchnorm(handle()));
        return *this;
    }
    Net &add_dropout(double rate)
    {
        detail::check(bp_net_add_dropout(handle(), rate));
        return *this;
    }
    Net &add_activation(int activation)
    {
        detail::check(bp_net_add_activation(handle(), activation));
        return *this;
    }
    Net &add_conv2d(std::size_t filters, std::size_t kernel_h, std::size_t kernel_w,
                    std::size_t stride = 1, std::size_t padding = 0,
                    int activation = BP_ACT_IDENTITY)
    {
        detail::check(
            bp_net_add_conv2d(handle(), filters, kernel_h, kernel_w, stride, padding, activation));
        return *this;
    }
    /** Max pooling over @p size x @p size windows moved by @p size. */
    Net &add_maxpool2d(std::size_t size) { return add_maxpool2d(size, size); }
    Net &add_maxpool2d(std::size_t size, std::size_t stride)
    {
        detail::check(bp_net_add_maxpool2d(handle(), size, stride));
        return *this;
    }
    /** Average pooling over @p size x @p size windows moved by @p size. */
    Net &add_avgpool2d(std::size_t size) { return add_avgpool2d(size, size); }
    Net &add_avgpool2d(std::size_t size, std::size_t stride)
    {
        detail::check(bp_net_add_avgpool2d(handle(), size, stride));
        return *this;
    }
    Net &add_global_avgpool()
    {
        detail::check(bp_net_add_global_avgpool(handle()));
        return *this;
    }
    Net &add_flatten()
    {
        detail::check(bp_net_add_flatten(handle()));
        return *this;
    }
    /* recurrent layers: flags are enum bp_recurrent_flag bits */
    Net &add_rnn(std::size_t hidden, int activation = BP_ACT_TANH, int flags = 0)
    {
        detail::check(bp_net_add_rnn(handle(), hidden, activation, flags));
        return *this;
    }
    Net &add_lstm(std::size_t hidden, int flags = 0)
    {
        detail::check(bp_net_add_lstm(handle(), hidden, flags));
        return *this;
    }
    Net &add_gru(std::size_t hidden, int flags = 0)
    {
        detail::check(bp_net_add_gru(handle(), hidden, flags));
        return *this;
    }
    /** Forget the carried state of the stateful recurrent layers (bp_net_reset_state()). */
    Net &reset_state()
    {
        detail::check(bp_net_reset_state(handle()));
        return *this;
    }
    std::size_t layer_count() const noexcept { return bp_net_layer_count(h_.get()); }
    /** Layer @p index; throws bp::Error(BP_ERR_INDEX) when out of range. */
    Layer layer(std::size_t index) const
    {
        bp_layer *l = bp_net_layer(handle(), index);
        if (l == nullptr)
            detail::fail(BP_ERR_INDEX, "bp::Net::layer: no layer " + std::to_string(index) +
                                           " in a net of " + std::to_string(layer_count()));
        return Layer(l);
    }
    std::size_t input_size() const noexcept { return bp_net_input_size(h_.get()); }
    /** bp_net_input_shape(): [inputs x 1 x 1] for a net made by the constructor. */
    Shape input_shape() const
    {
        Shape s{0, 0, 0};
        detail::check(bp_net_input_shape(handle(), &s.channels, &s.height, &s.width));
        return s;
    }
    std::size_t output_size() const noexcept { return bp_net_output_size(h_.get()); }
    std::size_t param_count() const noexcept { return bp_net_param_count(h_.get()); }

    Net &set(int key, double value)
    {
        detail::check(bp_net_set(handle(), key, value));
        return *this;
    }
    double get(int key) const
    {
        double v = 0;
        detail::check(bp_net_get(handle(), key, &v));
        return v;
    }
    static Bounds param_bounds(int key)
    {
        Bounds b{0, 0};
        detail::check(bp_net_param_bounds(key, &b.lo, &b.hi));
        return b;
    }
    /** Every network and training-loop setting back to its default (bp_net_reset_settings). */
    void reset_settings() { detail::check(bp_net_reset_settings(handle())); }
    std::string summary() const
    {
        std::size_t needed = 0;
        bp_status s = bp_net_summary(handle(), nullptr, 0, &needed);
        if (s != BP_OK && s != BP_ERR_BUFFER_TOO_SMALL) detail::check(s);
        std::string text(needed, '\0');
        detail::check(bp_net_summary(handle(), &text[0], text.size(), nullptr));
        text.resize(needed > 0 ? needed - 1 : 0);
        return text;
    }
    std::string last_error() const { return bp_net_last_error(handle()); }

    /** Training forward pass; returns the outputs [n x out], borrowed from the net and
     *  valid until its next call. */
    const float *forward(const float *x, std::size_t n)
    {
        const float *y = nullptr;
        detail::check(bp_net_forward(handle(), x, n, &y));
        return y;
    }
    std::vector<float> forward(const std::vector<float> &x)
    {
        std::size_t n = detail::rows_of(x.size(), input_size(), "bp::Net::forward");
        const float *y = forward(x.data(), n);
        return std::vector<float>(y, y + n * output_size());
    }
    void backward(const float *dy, std::size_t n)
    {
        detail::check(bp_net_backward(handle(), dy, n));
    }
    void backward(const std::vector<float> &dy)
    {
        backward(dy.data(), detail::rows_of(dy.size(), output_size(), "bp::Net::backward"));
    }
    void zero_grad() { detail::check(bp_net_zero_grad(handle())); }

    /** bp_net_train_step(): returns the batch loss before the update. */
    float train_step(Optimizer &opt, int loss, const float *x, const float *y, std::size_t n)
    {
        float value = 0;
        detail::check(bp_net_train_step(handle(), opt.handle(), loss, x, y, n, &value));
        return value;
    }
    float train_step(Optimizer &opt, int loss, const std::vector<float> &x,
                     const std::vector<float> &y)
    {
        std::size_t n = detail::rows_of(x.size(), input_size(), "bp::Net::train_step");
        check_targets(loss, y.size(), n, "bp::Net::train_step");
        return train_step(opt, loss, x.data(), y.data(), n);
    }
    /** bp_net_compute_grads(): forward, loss, backward without the update. */
    float compute_grads(int loss, const float *x, const float *y, std::size_t n)
    {
        float value = 0;
        detail::check(bp_net_compute_grads(handle(), loss, x, y, n, &value));
        return value;
    }
    float compute_grads(int loss, const std::vector<float> &x, const std::vector<float> &y)
    {
        std::size_t n = detail::rows_of(x.size(), input_size(), "bp::Net::compute_grads");
        check_targets(loss, y.size(), n, "bp::Net::compute_grads");
        return compute_grads(loss, x.data(), y.data(), n);
    }

    /** bp_net_predict() into a caller buffer of @p capacity floats. */
    void predict(const float *x, std::size_t n, float *y, std::size_t capacity)
    {
        detail::check(bp_net_predict(handle(), x, n, y, capacity));
    }
    std::vector<float> predict(const std::vector<float> &x)
    {
        std::size_t n = detail::rows_of(x.size(), input_size(), "bp::Net::predict");
        std::vector<float> y(n * output_size());
        predict(x.data(), n, y.data(), y.size());
        return y;
    }

    /** Epoch callback for fit(): called with (epoch, metrics[BP_METRIC_COUNT]); return true
     *  to stop. An exception it throws stops training and is rethrown by fit(). */
    using EpochCallback = std::function<bool(std::size_t epoch, const double *metrics)>;

    /** bp_net_set_epoch_callback() with a C++ callable; an empty one clears it. */
    Net &set_epoch_callback(EpochCallback fn)
    {
        if (!fn) {
            detail::check(bp_net_set_epoch_callback(handle(), nullptr, nullptr));
            callback_.reset();
            return *this;
        }
        auto state = std::make_unique<CallbackState>();
        state->fn = std::move(fn);
        detail::check(bp_net_set_epoch_callback(handle(), &Net::trampoline, state.get()));
        callback_ = std::move(state); // heap-allocated: its address survives moves of *this
        return *this;
    }
    /** bp_net_fit(): train on @p train (validation on @p val if not null) with the
     *  BP_FIT_* settings; rethrows an exception thrown by the epoch callback. */
    void fit(Optimizer &opt, int loss, const Dataset &train, const Dataset *val = nullptr)
    {
        if (callback_) callback_->error = nullptr;
        bp_status s = bp_net_fit(handle(), opt.handle(), loss, train.handle(),
                                 val != nullptr ? val->handle() : nullptr);
        if (callback_ && callback_->error) {
            std::exception_ptr e = callback_->error;
            callback_->error = nullptr;
            std::rethrow_exception(e);
        }
        detail::check(s);
    }
    /** bp_net_evaluate(): {loss, accuracy, mae, rmse} (NaN where they do not apply). */
    std::vector<double> evaluate(int loss, const Dataset &ds)
    {
        std::vector<double> m(4);
        detail::check(bp_net_evaluate(handle(), loss, ds.handle(), m.data(), m.size()));
        return m;
    }
    /** bp_net_history_length(). */
    std::size_t history_length() const noexcept { return bp_net_history_length(h_.get()); }
    /** bp_net_history_get(). */
    double history(std::size_t epoch, int metric) const
    {
        double v = 0;
        detail::check(bp_net_history_get(handle(), epoch, metric, &v));
        return v;
    }
    /** bp_net_history_best(): the history row of the last fit()'s best epoch (the one
     *  BP_FIT_KEEP_BEST restores). @since 0.2 */
    std::size_t history_best() const
    {
        std::size_t row = 0;
        detail::check(bp_net_history_best(handle(), &row));
        return row;
    }
    /** bp_net_history_save_csv(). */
    void history_save_csv(const std::string &path) const
    {
        detail::check(bp_net_history_save_csv(handle(), path.c_str()));
    }

    /** Floats of scratch predict_ws() needs for @p n rows. */
    std::size_t predict_scratch_floats(std::size_t n) const noexcept
    {
        return bp_net_predict_scratch_floats(h_.get(), n);
    }
    /** bp_net_predict_ws(): read-only inference, callable from many threads at once on one
     *  net that nobody modifies, each thread with its own @p scratch. */
    void predict_ws(const float *x, std::size_t n, float *y, std::size_t capacity, float *scratch,
                    std::size_t scratch_floats) const
    {
        detail::check(bp_net_predict_ws(handle(), x, n, y, capacity, scratch, scratch_floats));
    }
    std::vector<float> predict_ws(const std::vector<float> &x) const
    {
        std::size_t n = detail::rows_of(x.size(), input_size(), "bp::Net::predict_ws");
        std::vector<float> y(n * output_size()), scratch(predict_scratch_floats(n));
        predict_ws(x.data(), n, y.data(), y.size(), scratch.data(), scratch.size());
        return y;
    }

    /** bp_net_save(): the model, atomically. */
    void save(const std::string &path) const { detail::check(bp_net_save(handle(), path.c_str())); }
    /** bp_net_save_buffer(): the model file's bytes. */
    std::vector<unsigned char> save_buffer() const
    {
        return detail::to_bytes([&](void *buf, std::size_t cap, std::size_t *size) {
            return bp_net_save_buffer(handle(), buf, cap, size);
        });
    }
    /** bp_net_load(). */
    static Net load(const std::string &path)
    {
        bp_net *h = nullptr;
        detail::check(bp_net_load(&h, path.c_str()));
        return Net(h);
    }
    /** bp_net_load_buffer(). */
    static Net load_buffer(const void *data, std::size_t size)
    {
        bp_net *h = nullptr;
        detail::check(bp_net_load_buffer(&h, data, size));
        return Net(h);
    }
    /** bp_checkpoint_save(): the model plus @p opt's state and the training state. */
    void checkpoint_save(const Optimizer &opt, const std::string &path) const
    {
        detail::check(bp_checkpoint_save(handle(), opt.handle(), path.c_str()));
    }
    /** bp_checkpoint_save_buffer(). */
    std::vector<unsigned char> checkpoint_save_buffer(const Optimizer &opt) const
    {
        return detail::to_bytes([&](void *buf, std::size_t cap, std::size_t *size) {
            return bp_checkpoint_save_buffer(handle(), opt.handle(), buf, cap, size);
        });
    }
    /** bp_checkpoint_load(): the network and its optimizer, ready to continue. */
    static std::pair<Net, Optimizer> checkpoint_load(const std::string &path)
    {
        bp_net *h = nullptr;
        bp_optimizer *o = nullptr;
        detail::check(bp_checkpoint_load(&h, &o, path.c_str()));
        return {Net(h), Optimizer::adopt(o)};
    }
    /** bp_checkpoint_load_buffer(). */
    static std::pair<Net, Optimizer> checkpoint_load_buffer(const void *data, std::size_t size)
    {
        bp_net *h = nullptr;
        bp_optimizer *o = nullptr;
        detail::check(bp_checkpoint_load_buffer(&h, &o, data, size));
        return {Net(h), Optimizer::adopt(o)};
    }
    /** bp_net_set_scaler(): keep a scaler with the model. */
    Net &set_scaler(int part, const std::vector<float> &offset, const std::vector<float> &scale)
    {
        if (offset.size() != scale.size())
            detail::fail(BP_ERR_SHAPE, "bp::Net::set_scaler: offsets and scales differ in size");
        detail::check(
            bp_net_set_scaler(handle(), part, offset.data(), scale.data(), offset.size()));
        return *this;
    }
    /** bp_net_get_scaler(): (offsets, scales); both empty when none is kept. */
    std::pair<std::vector<float>, std::vector<float>> get_scaler(int part) const
    {
        std::size_t count = 0;
        bp_status s = bp_net_get_scaler(handle(), part, nullptr, nullptr, 0, &count);
        if (s != BP_OK && s != BP_ERR_BUFFER_TOO_SMALL) detail::check(s);
        std::vector<float> offset(count), scale(count);
        if (count > 0)
            detail::check(
                bp_net_get_scaler(handle(), part, offset.data(), scale.data(), count, &count));
        return {offset, scale};
    }
    /** bp_net_set_meta(). */
    Net &set_meta(const std::string &key, const std::string &value)
    {
        detail::check(bp_net_set_meta(handle(), key.c_str(), value.c_str()));
        return *this;
    }
    /** bp_net_set_meta() with NULL: remove an entry. */
    Net &erase_meta(const std::string &key)
    {
        detail::check(bp_net_set_meta(handle(), key.c_str(), nullptr));
        return *this;
    }
    /** bp_net_get_meta(); throws bp::Error(BP_ERR_INDEX) for a missing key. */
    std::string get_meta(const std::string &key) const
    {
        std::size_t needed = 0;
        bp_status s = bp_net_get_meta(handle(), key.c_str(), nullptr, 0, &needed);
        if (s != BP_OK && s != BP_ERR_BUFFER_TOO_SMALL) detail::check(s);
        std::string value(needed, '\0');
        detail::check(bp_net_get_meta(handle(), key.c_str(), &value[0], value.size(), nullptr));
        value.resize(needed > 0 ? needed - 1 : 0);
        return value;
    }

    /** The parameter vector (borrowed, writable; see bp_net_params()). */
    float *params(std::size_t *count) { return bp_net_params(handle(), count); }
    /** The gradient vector (borrowed, writable; see bp_net_grads()). */
    float *grads(std::size_t *count) { return bp_net_grads(handle(), count); }

    /** The C handle (borrowed; still owned by this object). Throws if moved from. */
    bp_net *handle() const { return detail::require(h_.get(), "bp::Net"); }
    /** Give up ownership: the caller frees the handle with bp_net_free(). */
    bp_net *release() noexcept { return h_.release(); }

  private:
    explicit Net(bp_net *h) : h_(h) {}
    struct CallbackState {
        EpochCallback fn;
        std::exception_ptr error;
    };
    static int trampoline(void *user, std::size_t epoch, const double *metrics,
                          std::size_t count) noexcept
    {
        auto *state = static_cast<CallbackState *>(user);
        (void)count;
        try {
            return state->fn(epoch, metrics) ? 1 : 0;
        } catch (...) { // never unwind through C: stop training, rethrow in fit()
            state->error = std::current_exception();
            return 1;
        }
    }
    void check_targets(int loss, std::size_t count, std::size_t n, const char *what) const
    {
        std::size_t need = loss == BP_LOSS_SPARSE_SOFTMAX_CE ? n : n * output_size();
        if (count != need)
            detail::fail(BP_ERR_SHAPE, std::string(what) + ": " + std::to_string(count) +
                                           " target floats, expected " + std::to_string(need));
    }
    std::unique_ptr<bp_net, detail::NetFree> h_;
    std::unique_ptr<CallbackState> callback_; // declared after h_: destroyed first
};

inline void Optimizer::step(Net &net)
{
    detail::check(bp_optimizer_step(handle(), net.handle()));
}

/** bp_loss_eval(): the loss of @p pred [n x width] against @p target; fills @p dpred
 *  (resized to n * width) with dL/dpred unless it is null. */
inline float loss_eval(int loss, const std::vector<float> &pred, const std::vector<float> &target,
                       std::size_t width, std::vector<float> *dpred = nullptr, double param = 0)
{
    std::size_t n = detail::rows_of(pred.size(), width, "bp::loss_eval: pred");
    std::size_t need = loss == BP_LOSS_SPARSE_SOFTMAX_CE ? n : n * width;
    if (target.size() != need)
        detail::fail(BP_ERR_SHAPE, "bp::loss_eval: " + std::to_string(target.size()) +
                                       " target floats, expected " + std::to_string(need));
    float value = 0;
    if (dpred != nullptr) dpred->resize(pred.size());
    detail::check(bp_loss_eval(loss, param, pred.data(), target.data(), n, width, &value,
                               dpred != nullptr ? dpred->data() : nullptr));
    return value;
}

} // namespace bp

#endif /* BACKPROP_HPP */
