// cpp_regression.cpp -- using backprop from C++17: predict the age of abalone (sea snails)
// from shell measurements, with the library found through find_package(backprop).
//
//   cpp_regression [--epochs N] [--seed S] [--data DIR]
//
// Data: abelone.train / abelone.test from FANN's examples (Debian package libfann-dev;
// 10 inputs -- sex as three indicator columns and seven size and weight measurements -- and
// the number of shell rings scaled to [0, 1]). The C handles are owned by std::unique_ptr
// with the library's free functions as deleters, and failures become exceptions carrying
// the library's message. Last line: result: test_mse=... test_mae=... epochs=N
// Exits 2 if the data files are not installed.
#include <backprop.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace
{

struct NetDeleter {
    void operator()(bp_net *p) const { bp_net_free(p); }
};
struct OptimizerDeleter {
    void operator()(bp_optimizer *p) const { bp_optimizer_free(p); }
};
struct DatasetDeleter {
    void operator()(bp_dataset *p) const { bp_dataset_free(p); }
};
using Net = std::unique_ptr<bp_net, NetDeleter>;
using Optimizer = std::unique_ptr<bp_optimizer, OptimizerDeleter>;
using Dataset = std::unique_ptr<bp_dataset, DatasetDeleter>;

// Throw with the library's detailed message when a call fails.
void check(bp_status s, const std::string &what)
{
    if (s != BP_OK)
        throw std::runtime_error(what + ": " + bp_last_error() + " (" + bp_status_string(s) + ")");
}

Dataset load(const std::string &path)
{
    if (!std::ifstream(path)) {
        std::cerr << "cpp_regression: " << path
                  << " not found: install the Debian package libfann-dev\n";
        std::exit(2);
    }
    bp_dataset *ds = nullptr;
    check(bp_dataset_load_fann(&ds, path.c_str()), path);
    return Dataset(ds);
}

} // namespace

int main(int argc, char **argv)
{
    unsigned long epochs = 60, seed = 3;
    std::string dir = "/usr/share/doc/libfann-dev/examples/datasets";
    for (int i = 1; i < argc; i += 2) {
        const std::string opt = argv[i];
        if (i + 1 >= argc) {
            std::cerr << "usage: cpp_regression [--epochs N] [--seed S] [--data DIR]\n";
            return 1;
        }
        if (opt == "--epochs")
            epochs = std::strtoul(argv[i + 1], nullptr, 10);
        else if (opt == "--seed")
            seed = std::strtoul(argv[i + 1], nullptr, 10);
        else if (opt == "--data")
            dir = argv[i + 1];
        else {
            std::cerr << "usage: cpp_regression [--epochs N] [--seed S] [--data DIR]\n";
            return 1;
        }
    }
    try {
        Dataset train = load(dir + "/abelone.train"), test = load(dir + "/abelone.test");
        const size_t in = bp_dataset_input_size(train.get());

        // Standardise the inputs with statistics of the training rows.
        std::vector<float> offset(in), scale(in);
        check(bp_dataset_fit_scaler(train.get(), BP_SCALE_STANDARD, BP_SCALE_INPUTS, offset.data(),
                                    scale.data(), in),
              "scaler");
        for (bp_dataset *ds : {train.get(), test.get()})
            check(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, offset.data(), scale.data(), in),
                  "scaling");

        bp_net *raw = nullptr;
        check(bp_net_create(&raw, in, seed), "network");
        Net net(raw);
        check(bp_net_add_dense(net.get(), 32, BP_ACT_TANH), "layer 1");
        check(bp_net_add_dense(net.get(), 1, BP_ACT_IDENTITY), "layer 2");
        bp_optimizer *raw_opt = nullptr;
        check(bp_optimizer_create(&raw_opt, BP_OPTIMIZER_ADAM), "optimizer");
        Optimizer opt(raw_opt);
        check(bp_optimizer_set(opt.get(), BP_OPT_LEARNING_RATE, 3e-3), "learning rate");

        check(bp_net_set(net.get(), BP_FIT_EPOCHS, static_cast<double>(epochs)), "--epochs");
        check(bp_net_set(net.get(), BP_FIT_BATCH_SIZE, 32), "batch size");
        check(bp_net_set(net.get(), BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE), "schedule");
        // A capture-less lambda converts to the C callback type.
        check(bp_net_set_epoch_callback(
                  net.get(),
                  [](void *, size_t epoch, const double *m, size_t) -> int {
                      if ((epoch + 1) % 10 == 0)
                          std::printf("epoch %zu: train MSE %.5f, test MSE %.5f\n", epoch + 1,
                                      m[BP_METRIC_LOSS], m[BP_METRIC_VAL_LOSS]);
                      return 0;
                  },
                  nullptr),
              "callback");
        check(bp_net_fit(net.get(), opt.get(), BP_LOSS_MSE, train.get(), test.get()), "fit");

        double m[BP_METRIC_COUNT];
        check(bp_net_evaluate(net.get(), BP_LOSS_MSE, test.get(), m, BP_METRIC_COUNT), "evaluate");
        std::printf("abalone test set (%zu rows, rings scaled to [0, 1]): MSE %.5f, MAE %.4f\n",
                    bp_dataset_size(test.get()), m[BP_METRIC_LOSS], m[BP_METRIC_MAE]);
        std::printf("result: test_mse=%.6f test_mae=%.4f epochs=%zu\n", m[BP_METRIC_LOSS],
                    m[BP_METRIC_MAE], bp_net_history_length(net.get()));
    } catch (const std::exception &e) {
        std::cerr << "cpp_regression: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
