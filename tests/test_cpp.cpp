// test_cpp.cpp -- the C++17 wrappers of include/backprop.hpp: RAII ownership and moves,
// exceptions carrying the library's status and message, and training through the wrappers.
// A small harness of its own (cmocka's longjmp would skip C++ destructors on failure).
#include <backprop.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

namespace
{

int g_failures = 0;

struct CheckFailed {
};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);          \
            throw CheckFailed{};                                                                   \
        }                                                                                          \
    } while (0)

// Runs @p fn, which must throw bp::Error with @p status; returns its message.
std::string expect_error(int status, const std::function<void()> &fn)
{
    try {
        fn();
    } catch (const bp::Error &e) {
        if (e.status() != status)
            std::fprintf(stderr, "expected status %d, got %d (%s)\n", status, e.status(), e.what());
        CHECK(e.status() == status);
        return e.what();
    }
    std::fprintf(stderr, "expected bp::Error %d, nothing thrown\n", status);
    CHECK(false);
    return "";
}

const std::vector<float> kXorX{0, 0, 0, 1, 1, 0, 1, 1};
const std::vector<float> kXorY{0, 1, 1, 0};

bp::Net xor_net(std::uint64_t seed)
{
    bp::Net net(2, seed);
    net.add_dense(8, BP_ACT_TANH).add_dense(1, BP_ACT_SIGMOID);
    return net;
}

// Ownership: movable, not copyable; the error type is what the header promises.
static_assert(!std::is_copy_constructible_v<bp::Net>);
static_assert(!std::is_copy_assignable_v<bp::Net>);
static_assert(std::is_nothrow_move_constructible_v<bp::Net>);
static_assert(std::is_nothrow_move_assignable_v<bp::Net>);
static_assert(!std::is_copy_constructible_v<bp::Optimizer>);
static_assert(std::is_nothrow_move_constructible_v<bp::Optimizer>);
static_assert(!std::is_copy_constructible_v<bp::Dataset>);
static_assert(std::is_nothrow_move_constructible_v<bp::Dataset>);
static_assert(std::is_base_of_v<std::runtime_error, bp::Error>);

void xor_trains_through_the_wrappers()
{
    bp::Net net = xor_net(42);
    bp::Optimizer opt(BP_OPTIMIZER_ADAM);
    opt.set(BP_OPT_LEARNING_RATE, 0.05);
    float loss = 1;
    for (int i = 0; i < 600; i++)
        loss = net.train_step(opt, BP_LOSS_MSE, kXorX, kXorY);
    CHECK(loss < 0.01f);
    CHECK(opt.step_count() == 600);
    std::vector<float> out = net.predict(kXorX);
    CHECK(out.size() == 4);
    for (std::size_t i = 0; i < 4; i++)
        CHECK(std::fabs(out[i] - kXorY[i]) < 0.15f);
}

void manual_steps_equal_train_step()
{
    bp::Net a = xor_net(3), b = xor_net(3);
    bp::Optimizer oa(BP_OPTIMIZER_SGD), ob(BP_OPTIMIZER_SGD);
    for (int i = 0; i < 3; i++) {
        a.train_step(oa, BP_LOSS_MSE, kXorX, kXorY);
        std::vector<float> pred = b.forward(kXorX), dpred;
        float value = bp::loss_eval(BP_LOSS_MSE, pred, kXorY, 1, &dpred);
        CHECK(value > 0 && dpred.size() == 4);
        b.backward(dpred);
        ob.step(b);
    }
    std::size_t na = 0, nb = 0;
    const float *pa = a.params(&na);
    const float *pb = b.params(&nb);
    CHECK(na == nb && na == a.param_count());
    for (std::size_t i = 0; i < na; i++)
        CHECK(std::fabs(pa[i] - pb[i]) < 1e-6f);
}

void moves_transfer_ownership()
{
    bp::Net a = xor_net(1);
    bp_net *raw = a.handle();
    bp::Net b = std::move(a);
    CHECK(b.handle() == raw);
    std::string msg = expect_error(BP_ERR_INVALID_ARG, [&] { (void)a.handle(); });
    CHECK(msg.find("moved from") != std::string::npos);
    CHECK(a.layer_count() == 0); // queries on a moved-from object are harmless
    bp::Net c(4);
    c = std::move(b); // frees c's old network
    CHECK(c.handle() == raw && c.input_size() == 2);
    bp::Net copy = c.clone();
    CHECK(copy.handle() != c.handle() && copy.param_count() == c.param_count());
    bp_net *released = copy.release();
    CHECK(released != nullptr);
    bp::Net again = bp::Net::adopt(released);
    CHECK(again.layer_count() == 2);
}

void errors_carry_status_and_library_message()
{
    bp::Net net(2);
    std::string msg = expect_error(BP_ERR_INVALID_ARG, [&] { net.add_dense(0, BP_ACT_RELU); });
    CHECK(msg == bp::last_error());
    CHECK(msg == net.last_error());
    CHECK(msg.find("units") != std::string::npos);
    expect_error(BP_ERR_STATE, [&] { net.predict(kXorX); });
    expect_error(BP_ERR_SHAPE, [&] { net.add_dense(1).predict({1, 2, 3}); });
    expect_error(BP_ERR_INDEX, [&] { (void)net.layer(7); });
    expect_error(BP_ERR_OUT_OF_RANGE, [&] { net.set(BP_NET_HUBER_DELTA, -1); });

    bp::Optimizer opt(BP_OPTIMIZER_ADAM);
    msg = expect_error(BP_ERR_OUT_OF_RANGE, [&] { opt.set(BP_OPT_BETA1, 1.5); });
    CHECK(msg == opt.last_error());
    msg = expect_error(BP_ERR_INVALID_ARG, [&] { opt.set(BP_OPT_MOMENTUM, 0.5); });
    CHECK(msg.find("does not apply to Adam") != std::string::npos);
    opt.set(BP_OPT_BETA1, 0.5);
    opt.reset_settings();
    CHECK(opt.get(BP_OPT_BETA1) == 0.9);
    expect_error(BP_ERR_INVALID_ARG, [] { bp::Optimizer bad(99); });
    expect_error(BP_ERR_NONFINITE, [&] {
        net.train_step(opt, BP_LOSS_MSE, {0, NAN, 1, 1}, {0, 1});
    });
    msg = expect_error(BP_ERR_IO, [] { bp::Dataset::load_fann("/nonexistent/x.fann"); });
    CHECK(msg.find("x.fann") != std::string::npos);
    expect_error(BP_ERR_SHAPE, [] { bp::Dataset({1, 2, 3}, {0, 1}, 2); });
    CHECK(bp::status_string(BP_ERR_SHAPE) == "shape mismatch");
}

void layer_view_reads_and_writes()
{
    bp::Net net = xor_net(5);
    bp::Layer first = net.layer(0);
    CHECK(first.kind() == BP_LAYER_DENSE && first.activation() == BP_ACT_TANH);
    CHECK(first.input_size() == 2 && first.output_size() == 8 && first.param_count() == 24);
    first.set_weights(std::vector<float>(16, 0.5f));
    first.set_biases(std::vector<float>(8, 0.25f));
    CHECK(first.weights() == std::vector<float>(16, 0.5f));
    CHECK(first.biases() == std::vector<float>(8, 0.25f));
    expect_error(BP_ERR_SHAPE, [&] { first.set_weights({1, 2}); });
    first.set(BP_LAYER_TRAINABLE, 0);
    CHECK(first.get(BP_LAYER_TRAINABLE) == 0);
    net.compute_grads(BP_LOSS_MSE, kXorX, kXorY);
    CHECK(first.weight_grad().size() == 16 && first.bias_grad().size() == 8);
    bp::Bounds b = bp::Layer::param_bounds(BP_LAYER_LEAKY_SLOPE);
    CHECK(b.lo == 0 && b.hi == 1);
    CHECK(net.summary().find("tanh") != std::string::npos);
}

void datasets_load_split_and_scale()
{
    bp::Dataset xor_ds = bp::Dataset::load_fann(BP_TEST_DATA_DIR "/xor.fann");
    CHECK(xor_ds.size() == 4 && xor_ds.input_size() == 2 && xor_ds.output_size() == 1);
    bp::Dataset iris = bp::Dataset::load_csv(BP_TEST_DATA_DIR "/iris.csv", 4, 1, ',', true);
    CHECK(iris.size() == 150 && iris.class_count() == 3);
    iris.shuffle(9);
    auto [train, test] = iris.split(0.8);
    CHECK(train.size() == 120 && test.size() == 30);
    auto [offset, scale] = train.fit_scaler(BP_SCALE_STANDARD, BP_SCALE_INPUTS);
    CHECK(offset.size() == 4 && scale.size() == 4);
    train.apply_scaler(BP_SCALE_INPUTS, offset, scale);
    double mean = 0;
    for (std::size_t i = 0; i < train.size(); i++)
        mean += double(train.inputs()[i * 4]);
    CHECK(std::fabs(mean / static_cast<double>(train.size())) < 1e-4);
    bp::Dataset hot = train.one_hot(3);
    CHECK(hot.output_size() == 3);

    // Iris through the wrappers: a small softmax classifier learns the training set.
    bp::Net net(4, 11);
    net.add_dense(16, BP_ACT_RELU).add_dense(3, BP_ACT_SOFTMAX);
    bp::Optimizer opt(BP_OPTIMIZER_ADAM);
    opt.set(BP_OPT_LEARNING_RATE, 0.02);
    std::vector<float> x(train.inputs(), train.inputs() + train.size() * 4);
    std::vector<float> y(train.targets(), train.targets() + train.size());
    for (int i = 0; i < 200; i++)
        net.train_step(opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y);
    std::vector<float> p = net.predict(x);
    std::size_t correct = 0;
    for (std::size_t r = 0; r < train.size(); r++) {
        std::size_t best = 0;
        for (std::size_t c = 1; c < 3; c++)
            if (p[r * 3 + c] > p[r * 3 + best]) best = c;
        correct += static_cast<float>(best) == y[r];
    }
    CHECK(correct * 10 >= train.size() * 9);
}

void models_save_load_and_resume()
{
    bp::Net net = xor_net(21);
    bp::Optimizer opt(BP_OPTIMIZER_ADAM);
    for (int i = 0; i < 10; i++)
        net.train_step(opt, BP_LOSS_MSE, kXorX, kXorY);
    net.set_meta("task", "xor").set_scaler(BP_SCALE_INPUTS, {0.5f, 0.5f}, {2, 2});
    std::vector<unsigned char> model = net.save_buffer();
    bp::Net copy = bp::Net::load_buffer(model.data(), model.size());
    CHECK(copy.predict(kXorX) == net.predict(kXorX));
    CHECK(copy.get_meta("task") == "xor");
    CHECK(copy.get_scaler(BP_SCALE_INPUTS).second == std::vector<float>(2, 2.0f));
    CHECK(copy.get_scaler(BP_SCALE_TARGETS).first.empty());
    CHECK(copy.predict_ws(kXorX) == net.predict(kXorX));
    copy.erase_meta("task");
    expect_error(BP_ERR_INDEX, [&] { (void)copy.get_meta("task"); });

    std::vector<unsigned char> ckpt = net.checkpoint_save_buffer(opt);
    auto [resumed, ropt] = bp::Net::checkpoint_load_buffer(ckpt.data(), ckpt.size());
    for (int i = 0; i < 5; i++) {
        net.train_step(opt, BP_LOSS_MSE, kXorX, kXorY);
        resumed.train_step(ropt, BP_LOSS_MSE, kXorX, kXorY);
    }
    CHECK(resumed.predict(kXorX) == net.predict(kXorX));
    CHECK(ropt.step_count() == 15);

    model[model.size() / 2] ^= 0x40;
    std::string msg;
    try {
        bp::Net::load_buffer(model.data(), model.size());
    } catch (const bp::Error &e) {
        msg = e.what();
        CHECK(e.status() == BP_ERR_CHECKSUM || e.status() == BP_ERR_FORMAT);
    }
    CHECK(!msg.empty() && msg == bp::last_error());
    expect_error(BP_ERR_IO, [] { bp::Net::load("/nonexistent/model.bpm"); });
    expect_error(BP_ERR_STATE, [] { bp::Net(2, 1).history_best(); }); // no fit yet
    CHECK(bp::format_version() >= 1);
}

void fit_with_callback_history_and_errors()
{
    bp::Dataset ds(kXorX, kXorY, 2);
    bp::Net net = xor_net(4);
    bp::Optimizer opt(BP_OPTIMIZER_ADAM);
    opt.set(BP_OPT_LEARNING_RATE, 0.05);
    net.set(BP_FIT_EPOCHS, 300).set(BP_FIT_BATCH_SIZE, 4);
    std::size_t calls = 0;
    net.set_epoch_callback([&](std::size_t epoch, const double *m) {
        CHECK(epoch == calls && m[BP_METRIC_LOSS] >= 0);
        calls++;
        return false;
    });
    net.fit(opt, BP_LOSS_MSE, ds, &ds);
    CHECK(calls == 300 && net.history_length() == 300);
    CHECK(net.history(299, BP_METRIC_VAL_LOSS) < net.history(0, BP_METRIC_VAL_LOSS));
    const std::size_t best = net.history_best();
    CHECK(best < 300 &&
          net.history(best, BP_METRIC_VAL_LOSS) <= net.history(299, BP_METRIC_VAL_LOSS));
    std::vector<double> m = net.evaluate(BP_LOSS_MSE, ds);
    CHECK(m.size() == 4 && m[BP_METRIC_LOSS] < 0.02 && std::isnan(m[BP_METRIC_ACCURACY]));

    bp::Net copy = net.clone(); // must not call this test's lambda
    copy.fit(opt, BP_LOSS_MSE, ds);
    CHECK(calls == 300);

    net.set_epoch_callback([](std::size_t epoch, const double *) -> bool {
        if (epoch == 2) throw std::runtime_error("stop here");
        return false;
    });
    std::string what;
    try {
        net.fit(opt, BP_LOSS_MSE, ds);
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    CHECK(what == "stop here" && net.history_length() == 3);
    net.set_epoch_callback(nullptr);
    bp::Dataset wide(std::vector<float>(9, 0.0f), {0, 1, 2}, 3);
    expect_error(BP_ERR_SHAPE, [&] { net.fit(opt, BP_LOSS_MSE, wide); });
    CHECK(bp::argmax({0.1f, 0.7f, 0.2f, 0.5f, 0.5f, 0.0f}, 3) == std::vector<std::size_t>({1, 0}));
    CHECK(bp::metric_name(BP_METRIC_VAL_ACCURACY) == "val_accuracy");
}

// 16 images 1 x 6 x 6: a bright row (class 0) or column (class 1) at position i % 6 on a
// dim, position-dependent background.
void line_images(std::vector<float> &x, std::vector<float> &y)
{
    for (std::size_t i = 0; i < 16; i++) {
        const std::size_t label = i % 2, at = (i / 2) % 6;
        for (std::size_t r = 0; r < 6; r++)
            for (std::size_t c = 0; c < 6; c++) {
                const bool on = label == 0 ? r == at : c == at;
                x.push_back(on ? 1.0f : 0.05f * static_cast<float>((r * 7 + c * 3 + i) % 4));
            }
        y.push_back(static_cast<float>(label));
    }
}

void cnn_through_the_wrappers()
{
    bp::Net net = bp::Net::image(1, 6, 6, 17);
    net.add_conv2d(3, 3, 3, 1, 1)
        .add_batchnorm()
        .add_activation(BP_ACT_RELU)
        .add_maxpool2d(2)
        .add_flatten()
        .add_dropout(0.2)
        .add_dense(2, BP_ACT_SOFTMAX);
    CHECK(net.input_shape() == (bp::Shape{1, 6, 6}) && net.input_size() == 36);
    const bp::Shape shapes[] = {{3, 6, 6},  {3, 6, 6},  {3, 6, 6}, {3, 3, 3},
                                {27, 1, 1}, {27, 1, 1}, {2, 1, 1}};
    const int kinds[] = {BP_LAYER_CONV2D,    BP_LAYER_BATCHNORM, BP_LAYER_ACTIVATION,
                         BP_LAYER_MAXPOOL2D, BP_LAYER_FLATTEN,   BP_LAYER_DROPOUT,
                         BP_LAYER_DENSE};
    CHECK(net.layer_count() == 7);
    for (std::size_t i = 0; i < 7; i++) {
        CHECK(net.layer(i).output_shape() == shapes[i]);
        CHECK(net.layer(i).kind() == kinds[i]);
    }
    // Weight sizes come from param_count: conv [filters x C x kh x kw] + filters biases,
    // batchnorm gamma [C] + beta [C], nothing for the kinds without parameters.
    bp::Layer conv = net.layer(0), norm = net.layer(1), pool = net.layer(3);
    CHECK(conv.weights().size() == 27 && conv.biases().size() == 3);
    CHECK(norm.weights() == std::vector<float>(3, 1.0f) && norm.biases().size() == 3);
    CHECK(pool.weights().empty() && pool.biases().empty() && pool.param_count() == 0);
    CHECK(net.layer(6).weights().size() == 54);
    CHECK(net.param_count() == 30 + 6 + 56);
    conv.set_weights(std::vector<float>(27, 0.1f));
    std::size_t np = 0;
    const float *p = net.params(&np);
    CHECK(np == net.param_count() && p[0] == 0.1f && p[26] == 0.1f);
    net.layer(5).set(BP_LAYER_DROPOUT_RATE, 0.1);
    CHECK(std::fabs(net.layer(5).get(BP_LAYER_DROPOUT_RATE) - 0.1) < 1e-12);
    conv.init_weights(BP_INIT_HE_NORMAL);

    std::vector<float> x, y;
    line_images(x, y);
    bp::Optimizer opt(BP_OPTIMIZER_ADAM);
    opt.set(BP_OPT_LEARNING_RATE, 0.02);
    const float first = net.train_step(opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y);
    float loss = first;
    for (int i = 0; i < 60; i++)
        loss = net.train_step(opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y);
    CHECK(loss < first / 2);
    std::vector<std::size_t> cls = bp::argmax(net.predict(x), 2);
    std::size_t hits = 0;
    for (std::size_t i = 0; i < cls.size(); i++)
        hits += static_cast<float>(cls[i]) == y[i];
    CHECK(hits >= 15);

    net.compute_grads(BP_LOSS_SPARSE_SOFTMAX_CE, x, y);
    double sum = 0;
    for (float g : conv.weight_grad())
        sum += double(g) * double(g);
    for (float g : conv.bias_grad())
        sum += double(g) * double(g);
    CHECK(conv.grad_norm() > 0 && std::fabs(conv.grad_norm() - std::sqrt(sum)) < 1e-6);
    CHECK(norm.grad_norm() > 0 && net.layer(6).grad_norm() > 0);
    CHECK(pool.grad_norm() == 0 && net.layer(5).grad_norm() == 0);

    std::vector<unsigned char> model = net.save_buffer();
    bp::Net copy = bp::Net::load_buffer(model.data(), model.size());
    CHECK(copy.input_shape() == net.input_shape() && copy.layer_count() == 7);
    for (std::size_t i = 0; i < 7; i++)
        CHECK(copy.layer(i).output_shape() == shapes[i]);
    CHECK(copy.predict(x) == net.predict(x));

    bp::Net small = bp::Net::image(1, 4, 4);
    std::string msg = expect_error(BP_ERR_SHAPE, [&] { small.add_conv2d(2, 5, 5); });
    CHECK(msg == bp::last_error() && msg.find("5 x 5") != std::string::npos);
    expect_error(BP_ERR_SHAPE, [&] { small.add_avgpool2d(5); });
    expect_error(BP_ERR_OUT_OF_RANGE, [&] { small.add_dropout(1.5); });
    expect_error(BP_ERR_INVALID_ARG, [&] { small.add_activation(-1); });
    CHECK(small.layer_count() == 0);
    small.add_avgpool2d(2, 1).add_global_avgpool();
    CHECK(small.layer(0).output_shape() == (bp::Shape{1, 3, 3}));
    CHECK(small.layer(1).output_shape() == (bp::Shape{1, 1, 1}));
    expect_error(BP_ERR_INVALID_ARG, [] { bp::Net::image(0, 4, 4); });
    bp::Net flat(5);
    CHECK(flat.input_shape() == (bp::Shape{5, 1, 1}));
    bp::Net moved = std::move(flat);
    expect_error(BP_ERR_INVALID_ARG, [&] { (void)flat.input_shape(); });
}

void free_functions()
{
    CHECK(bp::version() == BP_VERSION_NUMBER);
    CHECK(bp::version_string() == BP_VERSION_STRING);
    CHECK(bp::get_num_threads() >= 1);
    CHECK(!bp::backend_info().empty());
    expect_error(BP_ERR_OUT_OF_RANGE, [] { bp::set_num_threads(-3); });
}

} // namespace

int main()
{
    const std::pair<const char *, void (*)()> tests[] = {
        {"xor_trains_through_the_wrappers", xor_trains_through_the_wrappers},
        {"manual_steps_equal_train_step", manual_steps_equal_train_step},
        {"moves_transfer_ownership", moves_transfer_ownership},
        {"errors_carry_status_and_library_message", errors_carry_status_and_library_message},
        {"layer_view_reads_and_writes", layer_view_reads_and_writes},
        {"datasets_load_split_and_scale", datasets_load_split_and_scale},
        {"models_save_load_and_resume", models_save_load_and_resume},
        {"fit_with_callback_history_and_errors", fit_with_callback_history_and_errors},
        {"cnn_through_the_wrappers", cnn_through_the_wrappers},
        {"free_functions", free_functions},
    };
    int run = 0;
    for (const auto &[name, fn] : tests) {
        run++;
        try {
            fn();
            std::printf("[ OK ] %s\n", name);
        } catch (const CheckFailed &) {
            g_failures++;
            std::printf("[FAIL] %s\n", name);
        } catch (const std::exception &e) {
            g_failures++;
            std::printf("[FAIL] %s: unexpected exception: %s\n", name, e.what());
        }
    }
    std::printf("%d/%d tests passed\n", run - g_failures, run);
    return g_failures == 0 ? 0 : 1;
}
