// hpp_xor.cpp -- XOR with the C++17 wrappers of backprop.hpp: RAII handles, exceptions
// carrying the library's message. Built in-tree when a C++ compiler is available; run by the
// `demo` preset (cmake --workflow --preset demo).
#include <backprop.hpp>

#include <cstdio>
#include <vector>

int main()
{
    try {
        bp::Net net(2, 42); // 2 inputs, seed 42
        net.add_dense(8, BP_ACT_TANH).add_dense(1, BP_ACT_SIGMOID);
        bp::Optimizer opt(BP_OPTIMIZER_ADAM);
        opt.set(BP_OPT_LEARNING_RATE, 0.05);

        const std::vector<float> x{0, 0, 0, 1, 1, 0, 1, 1}, y{0, 1, 1, 0};
        float loss = 0;
        for (int epoch = 0; epoch < 500; epoch++)
            loss = net.train_step(opt, BP_LOSS_MSE, x, y);
        std::printf("%s", net.summary().c_str());
        std::printf("final loss %.6f\n", static_cast<double>(loss));

        const std::vector<float> out = net.predict(x);
        for (std::size_t i = 0; i < out.size(); i++)
            std::printf("%g xor %g -> %.3f\n", static_cast<double>(x[2 * i]),
                        static_cast<double>(x[2 * i + 1]), static_cast<double>(out[i]));

        // Errors arrive as exceptions with the library's message:
        try {
            net.add_dense(0, BP_ACT_RELU);
        } catch (const bp::Error &e) {
            std::printf("expected error %d: %s\n", e.status(), e.what());
        }
        return loss < 0.01f ? 0 : 1;
    } catch (const bp::Error &e) {
        std::fprintf(stderr, "hpp_xor: %s (status %d)\n", e.what(), e.status());
        return 1;
    }
}
